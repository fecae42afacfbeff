"""Cuts and loops on real x264 clips made by the pinned FFmpeg (issue 20, items 7 and 10).

A copy cut is proven by the packets (framemd5 of -c copy, timestamps left out): the output's are
the source's first ones. A smart cut keeps all but the last frame group's packets. A loop is
proven on the decoded pictures: no frame held at a join, every frame in the source's order.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from preflight.fixing.measure import packet_hashes
from preflight.fixing.spawn import find_ffmpeg

from .test_fix import assert_audio_in_sync, assert_passes, run_fix, streams

pytestmark = pytest.mark.usefixtures("ffmpeg")  # ffprobe (Debian's) reads the audio's ends


@pytest.fixture(scope="module")
def pinned() -> str:
    return find_ffmpeg()


def clip(pinned: str, out: Path, *, seconds: float, x264: str = "", rate: int = 30) -> Path:
    """testsrc2 720x720 (every frame differs) + a tone, x264 veryfast (B-frames, pyramid)."""
    args = [pinned, "-v", "error", "-y", "-f", "lavfi"]
    args += ["-i", f"testsrc2=s=720x720:r={rate}:d={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26"]
    args += ["-x264-params", x264] if x264 else []
    args += ["-c:a", "aac", "-shortest", str(out)]
    subprocess.run(args, check=True, timeout=120)
    return out


def same_prefix(a: list[tuple[int, str]], b: list[tuple[int, str]]) -> int:
    count = 0
    for one, other in zip(a, b, strict=False):
        if one != other:
            break
        count += 1
    return count


def test_a_b_frame_clip_is_cut_losslessly_after_its_last_whole_frame_group(
    pinned: str, tmp_path: Path
) -> None:
    # -t 5.5 kept the B-frames decoded before 5.5 s but shown after it (5.634 s; 5.600 s on
    # FFmpeg 9), the re-check rejected that and the whole clip was re-encoded.
    source = clip(pinned, tmp_path / "long.mp4", seconds=6)
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert [s.action for s in result.steps] == ["cut"]
    assert result.lossless and result.ssim is None
    kept, every = packet_hashes(str(out)), packet_hashes(str(source))
    assert kept == every[: len(kept)], "the copy cut changed or dropped a packet"
    assert result.duration_after is not None
    assert 5.25 <= result.duration_after <= 5.5 + 1e-6
    # each kept packet is one frame shown: the duration is the packet count at 30 fps
    assert result.duration_after == pytest.approx(len(kept) / 30, abs=1e-3)
    assert f"first {len(kept)} of {len(every)} video packets" in result.steps[0].detail
    assert_audio_in_sync(out, 30)


def test_where_no_frame_group_ends_near_the_limit_only_the_tail_is_re_encoded(
    pinned: str, tmp_path: Path
) -> None:
    # 16 B-frames in a row: a copy cut can end only every 17 frames (0.567 s), the last before
    # 5.5 s at 5.133 s. The smart cut copies up to there and re-encodes the 11 frames after.
    source = clip(
        pinned, tmp_path / "sparse.mp4", seconds=6, x264="bframes=16:b-adapt=0:b-pyramid=none"
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert [s.action for s in result.steps] == ["cut"]
    cut = result.steps[0]
    assert not cut.lossless and "smart cut" in cut.detail
    assert result.duration_after == pytest.approx(5.5, abs=1e-3)
    kept, every = packet_hashes(str(out)), packet_hashes(str(source))
    assert len(kept) == 165  # 5.5 s at 30 fps, no frame lost or repeated
    copied = same_prefix(kept, every)
    assert 165 - 17 <= copied < 165, "more than one frame group was re-encoded"
    assert f"first {copied} of {len(every)} video packets copied" in cut.detail
    assert not set(kept[copied:]) & set(every), "a re-encoded packet claims to be the source's"
    assert result.after is not None and not result.after.warnings  # no fps.variable at the join
    assert result.ssim is not None and result.ssim >= 0.99
    decoded = subprocess.run(
        [pinned, "-v", "error", "-xerror", "-i", str(out), "-f", "null", "-"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert decoded.returncode == 0 and not decoded.stderr, decoded.stderr
    assert_audio_in_sync(out, 30)


def pictures(pinned: str, path: Path) -> list[bytes]:
    """Every decoded frame as it is stored (no frame made up for a gap), shrunk to 64x36 gray."""
    argv = [pinned, "-v", "error", "-i", str(path), "-map", "0:V:0", "-fps_mode", "passthrough"]
    argv += ["-vf", "scale=64:36,format=gray", "-f", "rawvideo", "-"]
    raw = subprocess.run(argv, capture_output=True, check=True, timeout=120).stdout
    size = 64 * 36
    return [raw[at : at + size] for at in range(0, len(raw), size)]


def source_frames_shown(pinned: str, output: Path, source: Path) -> list[int]:
    """For each frame of `output`, the index of the source frame it looks most like."""
    originals = pictures(pinned, source)

    def distance(one: bytes, other: bytes) -> int:
        return sum(abs(a - b) for a, b in zip(one, other, strict=True))

    return [
        min(range(len(originals)), key=lambda i: distance(frame, originals[i]))
        for frame in pictures(pinned, output)
    ]


def test_extend_loop_plays_the_clip_again_without_holding_a_frame_at_the_join(
    pinned: str, tmp_path: Path
) -> None:
    # The audio outlasts the video by 0.1 s, as it often does: -stream_loop restarted after the
    # longer stream, so the last frame was held three frames (~100 ms) at the join.
    source = tmp_path / "short.mp4"
    args = [pinned, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=720x720:r=24:d=1"]
    args += ["-f", "lavfi", "-i", "sine=f=440:d=1.1", "-c:v", "libx264", "-preset", "veryfast"]
    subprocess.run([*args, "-c:a", "aac", str(source)], check=True, timeout=120)
    out = tmp_path / "out.mp4"
    result = run_fix(source, out, extend="loop")
    assert_passes(result)
    assert result.duration_after == pytest.approx(2.0, abs=1 / 24)
    assert source_frames_shown(pinned, out, source) == [*range(24), *range(24)]
    assert_audio_in_sync(out, 24)


def test_extend_loop_starts_every_lap_at_a_late_videos_first_frame(
    pinned: str, tmp_path: Path
) -> None:
    # The picture starts 1.5 s after the audio (an edit list): each lap is read from the video's
    # first frame, not from the container's start.
    source = tmp_path / "late.mp4"
    args = [pinned, "-v", "error", "-itsoffset", "1.5"]
    args += ["-f", "lavfi", "-i", "testsrc2=s=720x720:r=30:d=1"]
    args += ["-f", "lavfi", "-i", "sine=f=440:d=2.5", "-c:v", "libx264", "-preset", "veryfast"]
    args += ["-c:a", "aac", "-fps_mode", "passthrough", str(source)]
    subprocess.run(args, check=True, timeout=120)
    assert streams(source)["video"]["start"] == pytest.approx(1.5, abs=0.01)
    out = tmp_path / "out.mp4"
    result = run_fix(source, out, extend="loop")
    assert_passes(result)
    assert result.duration_after == pytest.approx(2.0, abs=1 / 30)
    assert source_frames_shown(pinned, out, source) == [*range(30), *range(30)]
    assert_audio_in_sync(out, 30)
