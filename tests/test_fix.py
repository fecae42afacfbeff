"""preflight.fix on ffmpeg-made videos: one test per step of issue 12, each proven on the output.

Lossless steps compare the video packets (framemd5 of -c copy, timestamps left out); re-encodes
measure SSIM against the source; every output is re-checked and every source left byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from preflight import FixResult, check_one, fix, load_policy
from preflight.errors import UsageError
from preflight.fixing.measure import packet_hashes

from .conftest import FIXTURES

MEDIA = FIXTURES / "media"
FAST = "ultrafast"  # measured: still SSIM >= 0.98 at CRF 18 on these clips (see bench/fix.py)


def encode(ffmpeg: str, out: Path, *, size: str, rate: str, seconds: float, **opts: str) -> Path:
    """testsrc2 (moving, detailed: SSIM means something) + a 440 Hz tone, x264 with B-frames."""
    args = [ffmpeg, "-v", "error", "-y"]
    args += ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", "-shortest"]
    for key, value in opts.items():
        args += [f"-{key}", value]
    subprocess.run([*args, str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def media(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fix-sources")
    return {
        "ntsc": encode(ffmpeg, folder / "ntsc.mp4", size="1280x720", rate="30000/1001", seconds=4),
        "pal": encode(ffmpeg, folder / "pal.mp4", size="1280x720", rate="25", seconds=4.8),
        "mkv": encode(ffmpeg, folder / "clip.mkv", size="1280x720", rate="30", seconds=3),
        "long": encode(ffmpeg, folder / "long.mp4", size="1280x720", rate="30", seconds=6),
        "short": encode(ffmpeg, folder / "short.mp4", size="1280x720", rate="24", seconds=1),
        "small": encode(ffmpeg, folder / "small.mp4", size="640x360", rate="30", seconds=2.5),
        "wide": encode(ffmpeg, folder / "wide.mp4", size="2400x720", rate="30", seconds=2),
        "fps15": encode(ffmpeg, folder / "fps15.mp4", size="1280x720", rate="15", seconds=3),
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_fix(source: Path, out: Path, **kwargs: Any) -> FixResult:
    before = sha256(source)
    kwargs.setdefault("preset", FAST)
    result = fix(source, out, **kwargs)
    assert sha256(source) == before, "the source changed"
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name], "a temp file was left"
    return result


def streams(path: Path) -> dict[str, dict[str, float]]:
    """start and end (s) of the first video and audio stream, as ffprobe reads them."""
    done = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json", str(path)),
            *("-show_entries", "stream=codec_type,start_time,duration"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    found: dict[str, dict[str, float]] = {}
    for s in json.loads(done.stdout)["streams"]:
        start = float(s["start_time"])
        found.setdefault(s["codec_type"], {"start": start, "end": start + float(s["duration"])})
    return found


def on_frame_grid(path: Path, fps: int) -> bool:
    """Every video packet's pts and dts fall exactly on a frame of `fps` (in the track's ticks)."""
    done = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json", "-select_streams", "V:0", str(path)),
            *("-show_entries", "stream=time_base:packet=pts,dts"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    found = json.loads(done.stdout)
    ticks = Fraction(found["streams"][0]["time_base"]) ** -1 / fps
    packets = found["packets"]
    assert ticks.denominator == 1 and packets
    return all(p["pts"] % ticks == 0 and p["dts"] % ticks == 0 for p in packets)


def assert_passes(result: FixResult) -> None:
    assert result.status == "fixed", result.reason
    assert result.output is not None and Path(result.output).exists()
    recheck = check_one(result.output, load_policy())
    assert recheck.verdict == "pass", recheck.violations


def assert_audio_in_sync(path: Path, fps: float) -> None:
    times = streams(path)
    assert "audio" in times, "the audio was dropped"
    frame = 1 / fps
    assert abs(times["audio"]["start"] - times["video"]["start"]) <= frame
    # an AAC frame (1024 samples at 44.1 kHz) is the finest the audio end can land on
    assert abs(times["audio"]["end"] - times["video"]["end"]) <= frame + 1024 / 44100


def test_ntsc_is_retimed_to_30_without_touching_a_video_packet(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["ntsc"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["retime"]
    assert result.lossless and result.ssim is None
    assert packet_hashes(str(tmp_path / "out.mp4")) == packet_hashes(str(media["ntsc"]))
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_exact == "30/1"
    assert result.duration_after == pytest.approx(4.004 * 1000 / 1001, abs=1 / 30)
    assert_audio_in_sync(tmp_path / "out.mp4", 30)
    assert any("drifts" in note for note in result.notes)


def test_25_fps_is_slowed_to_24_losslessly_and_the_audio_retimed_with_it(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["pal"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["retime", "retime_audio"]
    retime, audio = result.steps
    assert retime.lossless and not audio.lossless
    assert on_frame_grid(tmp_path / "out.mp4", 24)
    assert packet_hashes(str(tmp_path / "out.mp4")) == packet_hashes(str(media["pal"]))
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_exact == "24/1" and result.after.facts.fps_mode == "CFR"
    assert result.duration_after == pytest.approx(4.8 * 25 / 24, abs=1 / 24)
    assert_audio_in_sync(tmp_path / "out.mp4", 24)


def test_a_default_x264_25_fps_clip_is_retimed_losslessly(tmp_path: Path) -> None:
    # The shipped fixture (x264's default preset, 1/12800 clock, no audio): snapping timestamps
    # in the source's ticks in one run left colliding DTS, so the plan fell back to a re-encode.
    source = MEDIA / "fps_25.mp4"
    result = run_fix(source, tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["retime"] and result.lossless
    assert on_frame_grid(tmp_path / "out.mp4", 24)
    assert packet_hashes(str(tmp_path / "out.mp4")) == packet_hashes(str(source))
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_exact == "24/1" and result.after.facts.fps_mode == "CFR"


def test_a_retime_and_a_cut_keep_the_audio_as_long_as_the_video(
    ffmpeg: str, tmp_path: Path
) -> None:
    # 25 -> 24 plus a cut to 5.5 s: an output -t counted on the input's clock cut the re-timed
    # audio 4% short (5.28 s under 5.5 s of video).
    source = encode(ffmpeg, tmp_path / "pal6.mp4", size="1280x720", rate="25", seconds=6)
    result = run_fix(source, tmp_path / "out.mp4")
    assert_passes(result)
    assert {"retime", "cut"} <= {s.action for s in result.steps}
    assert result.duration_after == pytest.approx(5.5, abs=1 / 24)
    assert_audio_in_sync(tmp_path / "out.mp4", 24)


def test_a_camera_mov_with_pcm_audio_is_retimed(ffmpeg: str, tmp_path: Path) -> None:
    # The grid re-time's first pass copied the audio into MP4, which cannot hold PCM: the whole
    # fix failed ("Could not find tag for codec pcm_s16le").
    source = encode(
        ffmpeg, tmp_path / "cam.mov", size="1280x720", rate="25", seconds=3, **{"c:a": "pcm_s16le"}
    )
    result = run_fix(source, tmp_path / "out.mp4")
    assert_passes(result)
    assert "retime" in {s.action for s in result.steps}
    assert packet_hashes(str(tmp_path / "out.mp4")) == packet_hashes(str(source))
    assert_audio_in_sync(tmp_path / "out.mp4", 24)


def test_matroska_is_remuxed_to_mp4_with_every_packet_kept(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["mkv"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["remux"] and result.lossless
    assert packet_hashes(str(tmp_path / "out.mp4")) == packet_hashes(str(media["mkv"]))
    assert "-c:v copy" in result.steps[0].command and "+faststart" in result.steps[0].command
    assert_audio_in_sync(tmp_path / "out.mp4", 30)


def test_a_long_take_is_cut_to_the_longest_the_window_allows(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["long"], tmp_path / "out.mp4")
    assert_passes(result)
    # A copy cut ends after a whole frame group, at most a quarter second short of 5.5 s
    # (tests/test_fix_cuts.py proves it packet by packet, and the smart cut beyond that).
    assert result.duration_after is not None and 5.25 <= result.duration_after <= 5.5 + 1e-6
    assert [s.action for s in result.steps] == ["cut"] and result.lossless
    source = packet_hashes(str(media["long"]))
    kept = packet_hashes(str(tmp_path / "out.mp4"))
    assert kept == source[: len(kept)]
    assert_audio_in_sync(tmp_path / "out.mp4", 30)


def test_a_short_clip_is_extended_to_2_s_by_holding_the_last_frame(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["short"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["extend"]
    assert "freeze" in result.steps[0].detail and "tpad" in result.steps[0].command
    assert result.duration_after == pytest.approx(2.0, abs=1 / 24)
    assert result.ssim is not None and result.ssim >= 0.98


@pytest.mark.parametrize("mode", ["loop", "slow"])
def test_extend_loop_and_slow(media: dict[str, Path], tmp_path: Path, mode: str) -> None:
    result = run_fix(media["short"], tmp_path / "out.mp4", extend=mode)
    assert_passes(result)
    assert result.duration_after == pytest.approx(2.0, abs=1 / 24)
    assert mode in result.steps[-1].detail
    assert result.ssim is not None and result.ssim >= 0.98
    assert streams(tmp_path / "out.mp4").get("audio"), "the audio was dropped"


def test_a_small_video_is_scaled_up_keeping_aspect_audio_and_quality(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["small"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["scale"]
    assert result.after is not None and result.after.facts is not None
    assert (result.after.facts.width, result.after.facts.height) == (1280, 720)
    assert result.ssim is not None and result.ssim >= 0.98
    assert "-c:a copy" in result.steps[0].command and "libx264" in result.steps[0].command
    assert_audio_in_sync(tmp_path / "out.mp4", 30)


def test_beyond_3_to_1_the_picture_is_scaled_and_padded(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["wide"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["scale", "pad"]
    assert "cannot fit" in result.steps[1].detail
    assert result.after is not None and result.after.facts is not None
    assert (result.after.facts.width, result.after.facts.height) == (2160, 720)
    assert result.ssim is not None and result.ssim >= 0.98


def test_15_fps_is_converted_to_30_by_repeating_frames(
    media: dict[str, Path], tmp_path: Path
) -> None:
    result = run_fix(media["fps15"], tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["convert_fps"]
    assert result.after is not None and result.after.facts is not None
    assert result.after.facts.fps_exact == "30/1"
    assert result.ssim is not None and result.ssim >= 0.98  # measured at the source's 15 fps
    assert result.duration_after == pytest.approx(3.0, abs=1 / 15)


def late_video(ffmpeg: str, out: Path, *, size: str, seconds: float) -> Path:
    """29.97 fps testsrc2 presented 1.5 s after a tone that ends with it (-itsoffset)."""
    args = [ffmpeg, "-v", "error", "-y", "-itsoffset", "1.5"]
    args += ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=30000/1001:d={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds + 1.5}"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac"]
    # passthrough: the default constant-rate output would fill the first 1.5 s with frames
    subprocess.run([*args, "-fps_mode", "passthrough", str(out)], check=True, timeout=120)
    late = streams(out)
    assert late["video"]["start"] - late["audio"]["start"] == pytest.approx(1.5, abs=0.01)
    return out


def test_a_video_that_starts_after_its_audio_is_re_encoded_from_its_own_first_frame(
    ffmpeg: str, tmp_path: Path
) -> None:
    # As audio_longer_ffmpeg_magic.mp4 in the corpus: the audio starts at 0, the picture 1.5 s
    # later. Read from the container's start, the output opened on 1.5 s of the first frame
    # and the cut to 2 s kept only that: a "fixed" file with no motion left.
    source = late_video(ffmpeg, tmp_path / "late.mp4", size="640x360", seconds=1)
    result = run_fix(source, tmp_path / "out.mp4")
    assert_passes(result)
    assert result.ssim is not None and result.ssim >= 0.98  # not the first frame held
    assert "-ss 1.5" in result.steps[0].command  # before -i: both streams move together
    assert result.duration_after == pytest.approx(2.0, abs=1 / 30)
    assert_audio_in_sync(tmp_path / "out.mp4", 30)


def test_a_video_that_starts_after_its_audio_is_retimed_losslessly_from_its_first_frame(
    ffmpeg: str, tmp_path: Path
) -> None:
    source = late_video(ffmpeg, tmp_path / "late.mp4", size="1280x720", seconds=4)
    result = run_fix(source, tmp_path / "out.mp4")
    assert_passes(result)
    assert [s.action for s in result.steps] == ["retime"] and result.lossless
    assert packet_hashes(str(tmp_path / "out.mp4")) == packet_hashes(str(source))
    assert result.duration_after == pytest.approx(4.0, abs=1 / 30)
    assert streams(tmp_path / "out.mp4")["video"]["start"] == pytest.approx(0, abs=1 / 30)
    assert_audio_in_sync(tmp_path / "out.mp4", 30)


def test_a_re_encode_under_the_ssim_bar_is_unfixable_and_nothing_is_written(
    media: dict[str, Path], tmp_path: Path
) -> None:
    # A bar no lossy encode reaches stands in for a re-encode that lost the picture: the
    # output passes the check, but its frames are not the source's, so it is not "fixed".
    out = tmp_path / "out.mp4"
    result = run_fix(media["small"], out, min_ssim=0.9999)
    assert result.status == "unfixable" and result.exit_code != 0
    assert result.ssim is not None and result.ssim < 0.9999
    assert "SSIM" in result.reason and "\n" not in result.reason
    assert result.output is None and list(tmp_path.iterdir()) == []


def test_rotation_metadata_survives_a_re_encode(ffmpeg: str, tmp_path: Path) -> None:
    # rotated_90.mp4 is 1280x720 with a 90° display matrix; cut it into range with a re-encode
    source = tmp_path / "rotated.mp4"
    shutil.copyfile(MEDIA / "rotated_90.mp4", source)
    result = run_fix(source, tmp_path / "out.mp4", extend="slow")  # passes: nothing to fix
    assert result.status == "nothing_to_fix" and result.output is None
    assert not (tmp_path / "out.mp4").exists()
    short = tmp_path / "short_rotated.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(source), "-c", "copy", "-t", "1", str(short)],
        check=True,
        timeout=60,
    )
    fixed = run_fix(short, tmp_path / "short.fixed.mp4")
    assert_passes(fixed)
    assert fixed.after is not None and fixed.after.facts is not None
    assert fixed.after.facts.rotation == 90
    assert (fixed.after.facts.width, fixed.after.facts.height) == (1280, 720)


def test_a_passing_file_is_not_touched_but_moov_at_end_is_moved_losslessly(
    tmp_path: Path,
) -> None:
    result = run_fix(MEDIA / "fmt_mp4_h264.mp4", tmp_path / "out.mp4")
    assert result.status == "nothing_to_fix" and not (tmp_path / "out.mp4").exists()
    moved = run_fix(MEDIA / "moov_at_end.mp4", tmp_path / "moov.mp4")
    assert_passes(moved)
    assert [s.action for s in moved.steps] == ["faststart"] and moved.lossless
    assert moved.after is not None and moved.after.facts is not None
    assert moved.after.facts.faststart is True
    assert packet_hashes(str(tmp_path / "moov.mp4")) == packet_hashes(
        str(MEDIA / "moov_at_end.mp4")
    )


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("audio_only.mp4", "unfixable", "no video track"),
        ("cover_art.m4a", "unfixable", "no video track"),
        ("trunc_60pct.mp4", "error", "truncated"),
        ("err_text.mp4", "error", ""),
        ("no_moov.mp4", "error", "moov"),
    ],
)
def test_unfixable_and_unreadable_inputs_write_nothing(
    tmp_path: Path, name: str, status: str, words: str
) -> None:
    result = run_fix(MEDIA / name, tmp_path / "out.mp4")
    assert result.status == status and words in result.reason
    assert result.exit_code != 0 and result.output is None
    assert list(tmp_path.iterdir()) == []


def test_dry_run_plans_and_writes_nothing(media: dict[str, Path], tmp_path: Path) -> None:
    result = run_fix(media["small"], tmp_path / "out.mp4", dry_run=True)
    assert result.status == "planned" and result.output == str(tmp_path / "out.mp4")
    command = result.steps[0].command
    assert command.startswith("ffmpeg ") and "scale=" in command and "pad=" in command
    assert ",1280\\," in command and "h=720:w=1280" in command  # 640x360 -> 1280x720
    assert list(tmp_path.iterdir()) == []


def test_never_over_the_source_and_never_over_an_output_without_force(
    media: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="overwrite the source"):
        fix(media["small"], media["small"])
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="--force"):
        fix(media["small"], existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(UsageError, match="download it first"):
        fix("https://example.com/a.mp4")
    forced = run_fix(media["small"], existing, force=True)
    assert_passes(forced)


def test_a_policy_no_transform_can_meet_is_unfixable(
    media: dict[str, Path], tmp_path: Path
) -> None:
    house = tmp_path / "mov_only.json"
    house.write_text(json.dumps({"extends": "cometapi", "containers": ["mov"]}))
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    result = run_fix(media["ntsc"], out, policy=load_policy(house))
    assert result.status == "unfixable" and "MP4" in result.reason
    assert list(out.parent.iterdir()) == []
