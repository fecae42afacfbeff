"""Containers and codecs fix handles on the pinned FFmpeg (issue 20, item 8): WebM/VP9, AV1 at
25 fps, MPEG-TS, variable-rate Matroska and VVC, each a short clip made by that FFmpeg.

Lossless steps are proven by the packets (framemd5 of -c copy, timestamps left out); re-encodes
by SSIM against the source; every output passes the re-check.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from preflight.fixing.measure import packet_hashes
from preflight.fixing.packets import on_grid, read_packets
from preflight.fixing.spawn import find_ffmpeg

from .test_fix import assert_audio_in_sync, assert_passes, run_fix

pytestmark = pytest.mark.usefixtures("ffmpeg")  # ffprobe (Debian's) reads the audio's ends


@pytest.fixture(scope="module")
def pinned() -> str:
    return find_ffmpeg()


def make(pinned: str, out: Path, lavfi: str, *encode: str, seconds: float = 3) -> Path:
    """testsrc2 (`lavfi` gives size and rate) + a tone, encoded with `encode`."""
    args = [pinned, "-v", "error", "-y", "-f", "lavfi", "-i", f"{lavfi}:d={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", *encode, "-shortest", str(out)]
    subprocess.run(args, check=True, timeout=120)
    return out


X264 = ("-c:v", "libx264", "-preset", "ultrafast")


def test_a_webm_vp9_browser_upload_is_remuxed_losslessly(pinned: str, tmp_path: Path) -> None:
    # The most common browser upload: the grid re-time's QuickTime scratch refused VP9 ("vp9
    # only supported in MP4") and the clip was unfixable.
    source = make(
        pinned,
        tmp_path / "upload.webm",
        "testsrc2=s=1280x720:r=30",
        *("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"),
        *("-c:a", "libopus"),
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert [s.action for s in result.steps] == ["remux"] and result.lossless
    assert packet_hashes(str(out)) == packet_hashes(str(source))
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.video_codec == "vp9" and result.after.facts.fps_exact == "30/1"
    assert_audio_in_sync(out, 30)


def test_av1_at_25_fps_is_retimed_to_24_losslessly(pinned: str, tmp_path: Path) -> None:
    # "av1 only supported in MP4 and AVIF": the re-time's first pass wrote QuickTime.
    source = make(
        pinned,
        tmp_path / "av1.mp4",
        "testsrc2=s=1280x720:r=25",
        *("-c:v", "libsvtav1", "-preset", "12", "-crf", "45", "-c:a", "aac"),
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert result.steps[0].action == "retime" and result.steps[0].lossless
    assert packet_hashes(str(out)) == packet_hashes(str(source))
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_exact == "24/1" and result.after.facts.video_codec == "av1"
    assert_audio_in_sync(out, 24)


def test_mpeg_ts_is_remuxed_first_and_its_frame_rate_read_after(
    pinned: str, tmp_path: Path
) -> None:
    # A TS carries no frame rate the reader can see: "the frame rate could not be read", though
    # the remuxed MP4 has one.
    source = make(pinned, tmp_path / "cam.ts", "testsrc2=s=1280x720:r=30", *X264, "-c:a", "aac")
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert [s.action for s in result.steps] == ["remux"] and result.lossless
    # The same NAL units, repackaged from the TS's start codes to MP4's length prefixes: the
    # packets' bytes differ by those, every decoded picture is the source's, bit for bit.
    assert decoded_hashes(pinned, out) == decoded_hashes(pinned, source)
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_exact == "30/1"
    assert_audio_in_sync(out, 30)


def decoded_hashes(pinned: str, path: Path) -> list[str]:
    """The md5 of every decoded picture, in order."""
    argv = [pinned, "-v", "error", "-i", str(path), "-map", "0:V:0", "-fps_mode", "passthrough"]
    out = subprocess.run(
        [*argv, "-f", "framemd5", "-"], capture_output=True, check=True, timeout=120
    ).stdout.decode()
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line[:1] != "#"]


def variable_rate_mkv(pinned: str, folder: Path) -> Path:
    """1.5 s at 30 fps then 1.5 s at 24 fps in one Matroska stream (millisecond timestamps)."""
    parts = []
    for rate in (30, 24):
        parts.append(
            make(
                pinned,
                folder / f"part{rate}.mkv",
                f"testsrc2=s=1280x720:r={rate}",
                *X264,
                *("-c:a", "libopus"),
                seconds=1.5,
            )
        )
    listing = folder / "parts.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    out = folder / "vfr.mkv"
    args = [pinned, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    subprocess.run([*args, "-c", "copy", str(out)], check=True, timeout=120)
    return out


def test_a_variable_rate_matroska_is_remuxed_first_then_made_constant(
    pinned: str, tmp_path: Path
) -> None:
    # Unfixable before ("the frame rate could not be read"): the remux comes first, alone, and
    # the MP4's own facts then show the variable rate the re-encode makes constant.
    source = variable_rate_mkv(pinned, tmp_path)
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    actions = [s.action for s in result.steps]
    assert actions[0] == "remux" and "convert_fps" in actions
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_mode == "CFR"
    assert result.ssim is not None and result.ssim >= 0.97
    assert_audio_in_sync(out, result.after.facts.fps or 30)


def test_millisecond_timestamps_are_snapped_only_when_they_sit_on_one_frame_grid(
    pinned: str, tmp_path: Path
) -> None:
    # Snapping a variable-rate Matroska's timestamps to a 30 fps grid would move every 24 fps
    # frame; such a file is remuxed as it is first.
    constant = make(
        pinned, tmp_path / "cfr.mkv", "testsrc2=s=1280x720:r=30", *X264, "-c:a", "libopus"
    )
    steady, varying = (
        read_packets(str(constant)),
        read_packets(str(variable_rate_mkv(pinned, tmp_path))),
    )
    assert steady is not None and varying is not None
    assert steady.time_base == varying.time_base == Fraction(1, 1000)
    assert on_grid(steady, Fraction(30))
    assert not on_grid(varying, Fraction(30)) and not on_grid(varying, Fraction(24))


def test_vvc_is_decoded_and_re_encoded(pinned: str, tmp_path: Path) -> None:
    # Refused up front before ("ffmpeg 5.1 has no VVC support"); the pinned FFmpeg decodes it.
    source = tmp_path / "vvc.mp4"
    args = [pinned, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=720x720:r=15:d=2.2"]
    subprocess.run(
        [*args, "-c:v", "libvvenc", "-preset", "faster", "-qp", "32", str(source)],
        check=True,
        timeout=120,
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert [s.action for s in result.steps] == ["convert_fps"]
    assert result.after is not None and result.after.facts is not None
    # libvvenc writes 10-bit: H.264 for 8-bit sources, HEVC Main 10 for 10-bit ones (item 11)
    assert result.after.facts.video_codec in {"h264", "hevc"}
    assert result.after.facts.fps_exact == "30/1"
    assert result.ssim is not None and result.ssim >= 0.97
