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

from .test_fix import assert_audio_in_sync, assert_passes, run_fix

pytestmark = pytest.mark.usefixtures("ffmpeg")  # ffprobe (Debian's) reads the audio's ends


@pytest.fixture(scope="module")
def pinned() -> str:
    return find_ffmpeg()


def clip(pinned: str, out: Path, *, seconds: float, x264: str = "", rate: int = 30) -> Path:
    """testsrc2 1280x720 (every frame differs) + a tone, x264 veryfast (B-frames, pyramid)."""
    args = [pinned, "-v", "error", "-y", "-f", "lavfi"]
    args += ["-i", f"testsrc2=s=1280x720:r={rate}:d={seconds}"]
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
