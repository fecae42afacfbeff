"""`fix` keeps what it was given and says what it did (issue 20, items 3, 9, 11, 12, VMAF): the
judged track is the one fixed, each frame keeps its shape, metadata/subtitles/timecode survive and
what does not is named, alpha and 10-bit are handled on purpose, and the result and the JSON tell
the truth about the file written. Every source is made here by ffmpeg; every claim is read back
from the output with ffmpeg/ffprobe, not from the result alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from preflight import check_one, fix, load_policy
from preflight.fixing import measure
from preflight.fixing.picture import Picture
from preflight.fixing.plan import Plan, Step
from preflight.fixing.result import surviving_steps
from preflight.fixing.spawn import find_ffmpeg
from preflight.schemas import load_schema

from .conftest import run_cli
from .test_fix import assert_passes, run_fix

FAST = "ultrafast"
pytestmark = pytest.mark.usefixtures("ffmpeg")  # ffprobe (Debian's) reads the outputs back


def make(out: Path, *inputs: str, args: tuple[str, ...] = ()) -> Path:
    """The pinned ffmpeg (VP9, ProRes, 10-bit x264) from lavfi inputs into `out`."""
    argv = [find_ffmpeg(), "-v", "error", "-y"]
    for one in inputs:
        argv += ["-f", "lavfi", "-i", one]
    subprocess.run([*argv, *args, str(out)], check=True, timeout=120)
    return out


def probe(path: Path, entries: str) -> Any:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries", entries, str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def gray_frame(path: Path, at_s: float, size: tuple[int, int]) -> list[bytes]:
    """The rows of one decoded frame as 8-bit luma."""
    done = subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-ss", f"{at_s}", "-i", str(path), "-frames:v", "1"),
            *("-vf", "format=gray", "-f", "rawvideo", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    width, height = size
    assert len(done.stdout) == width * height
    return [done.stdout[row * width : (row + 1) * width] for row in range(height)]


def mean(rows: list[bytes], left: int, right: int) -> float:
    values = [value for row in rows for value in row[left:right]]
    return sum(values) / len(values)


def ssim_against(output: Path, source: Path, source_chain: str) -> float:
    """SSIM of `output` against `source` laid over it by `source_chain` (its own stream label)."""
    done = subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(output), "-i", str(source)),
            *("-filter_complex", f"{source_chain}[r];[0:v:0][r]ssim=shortest=1", "-f", "null"),
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return float(done.stderr.rsplit(b"All:", 1)[1].split()[0])


def test_the_judged_track_is_the_one_fixed_measured_and_named_in_the_hint(
    tmp_path: Path,
) -> None:
    # A disabled 640x360 first track (bars) and an enabled 1280x718 second one (testsrc2):
    # check judges the enabled one; fix mapped 0:V:0 and published the hidden bars upscaled.
    source = make(
        tmp_path / "two.mp4",
        "smptebars=s=640x360:r=30:d=2",
        "testsrc2=s=1280x718:r=30:d=2",
        args=(
            *("-map", "0", "-map", "1", "-c:v", "libx264", "-preset", FAST, "-crf", "20"),
            *("-disposition:v:0", "0", "-disposition:v:1", "default"),
        ),
    )
    before = check_one(str(source), load_policy())
    hint = next(w.hint for w in before.warnings if w.rule == "stream.extra_video_tracks")
    assert "-map 0:i:2 " in hint, hint
    result = run_fix(source, tmp_path / "out.mp4")
    assert_passes(result)
    out = tmp_path / "out.mp4"
    streams = probe(out, "stream=codec_type,width,height")["streams"]
    assert [(s["codec_type"], s["width"], s["height"]) for s in streams] == [("video", 1284, 720)]
    judged = ssim_against(out, source, "[1:v:1]scale=1284:720")
    hidden = ssim_against(out, source, "[1:v:0]scale=1284:720")
    assert judged >= 0.97 and hidden < 0.9, (judged, hidden)
    assert result.ssim is not None and result.ssim >= 0.97  # measured against the judged track
    assert [(d.index, d.kind) for d in result.dropped] == [(0, "video")]


def test_a_webm_whose_frame_size_changes_keeps_each_frames_shape(tmp_path: Path) -> None:
    # 16:9 then 4:3 VP9 frames in one WebM, both too small: each is scaled into 1280x720 keeping
    # its shape (the 4:3 ones pillarboxed), where they were squashed by 25 %.
    wide = make(
        tmp_path / "wide.webm",
        "testsrc2=s=640x360:r=30:d=1.5",
        args=("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"),
    )
    narrow = make(
        tmp_path / "narrow.webm",
        "smptebars=s=480x360:r=30:d=1.5",
        args=("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"),
    )
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{wide}'\nfile '{narrow}'\n")
    source = tmp_path / "both.webm"
    subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)),
            *("-c", "copy", str(source)),
        ],
        check=True,
        timeout=60,
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    rows = gray_frame(out, 2.2, (1280, 720))  # a 4:3 frame: 960x720 in the middle
    assert mean(rows, 0, 150) < 20 and mean(rows, 1130, 1280) < 20, "no pillars: squashed"
    assert mean(rows, 170, 1110) > 60
    first = gray_frame(out, 0.5, (1280, 720))  # a 16:9 frame fills the width
    assert mean(first, 0, 150) > 30 and mean(first, 1130, 1280) > 30
    assert result.ssim is not None and result.ssim >= 0.97
    assert result.vmaf is not None and result.vmaf >= 90
    # The reference keeps each frame's shape too: a squashed encode is refused by it.
    squashed = tmp_path / "squashed.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-i", str(source), "-vf", "scale=1280:720"),
            *("-c:v", "libx264", "-preset", FAST, "-crf", "18", str(squashed)),
        ],
        check=True,
        timeout=120,
    )
    align = measure.Alignment(
        rate=Fraction(30), picture=Picture((640, 360), (1280, 720), (1280, 720))
    )
    got = measure.quality(str(squashed), str(source), align, frames=90, timeout_s=120)
    assert got.ssim < 0.97 or (got.vmaf is not None and got.vmaf < 90), got


def test_metadata_subtitles_and_timecode_survive_and_every_dropped_stream_is_named(
    tmp_path: Path,
) -> None:
    subtitles = tmp_path / "subs.srt"
    subtitles.write_text("1\n00:00:00,100 --> 00:00:01,000\nhello\n")
    source = tmp_path / "camera.mov"
    subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=1.2"),
            *("-f", "lavfi", "-i", "sine=f=440:d=1.2", "-f", "lavfi", "-i", "sine=f=880:d=1.2"),
            *("-i", str(subtitles), "-map", "0", "-map", "1", "-map", "2", "-map", "3"),
            *("-c:v", "libx264", "-preset", FAST, "-c:a", "aac", "-c:s", "mov_text"),
            *("-metadata", "creation_time=2024-05-01T10:00:00Z", "-metadata", "make=Acme"),
            *("-metadata", "model=Cam 1", "-metadata", "location=+40.7388-074.0002/"),
            *("-timecode", "01:00:00:00", str(source)),
        ],
        check=True,
        timeout=120,
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)  # 1.2 s: extended to 2 s, re-encoded
    assert_passes(result)
    found = probe(out, "stream=codec_type,codec_name,codec_tag_string:format_tags")
    tags = found["format"]["tags"]
    assert tags["creation_time"].startswith("2024-05-01T10:00:00")
    assert tags["location"] == "+40.7388-074.0002/"
    assert tags["make"] == "Acme" and tags["model"] == "Cam 1"
    assert "major_brand" not in tags or tags["major_brand"] != "qt  "
    kinds = [(s["codec_type"], s["codec_tag_string"]) for s in found["streams"]]
    assert ("subtitle", "tx3g") in kinds and ("data", "tmcd") in kinds
    assert [k for k, _ in kinds].count("audio") == 1
    assert [(d.kind, d.why.split(":")[0]) for d in result.dropped] == [
        ("audio", "another audio track")
    ]
    assert any(step.action == "extend" for step in result.steps)


def test_alpha_is_composited_over_grey_and_10_bit_becomes_hevc_main_10(tmp_path: Path) -> None:
    # ProRes 4444: an opaque black box on a transparent (black) background. Without the alpha
    # both are black, the box gone; composited over grey it stays. 12-bit ProRes is not HEVC:
    # it becomes HEVC Main 10 (it became H.264 High 10, which hardware decoders seldom play).
    source = make(
        tmp_path / "alpha.mov",
        "color=c=black@0.0:s=1280x720:r=30:d=0.5,format=yuva444p10le,"
        "drawbox=x=320:y=180:w=640:h=360:color=black@1:t=fill:replace=1",
        args=("-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"),
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    rows = gray_frame(out, 0.5, (1280, 720))
    assert mean(rows[300:420], 500, 780) < 30  # the box
    assert 100 < mean(rows[20:100], 20, 200) < 160  # the transparent area: grey, not black
    assert any("alpha" in note and "grey" in note for note in result.notes)
    assert result.written is not None
    written = (result.written.video_codec, result.written.profile, result.written.bit_depth)
    assert written == ("hevc", "Main 10", 10)
    assert any("HEVC Main 10" in note for note in result.notes)
    assert result.ssim is not None and result.ssim >= 0.97  # the reference is composited too


def test_ten_bit_h264_becomes_hevc_main_10_or_8_bit_h264_by_option(tmp_path: Path) -> None:
    source = make(
        tmp_path / "ten.mp4",
        "testsrc2=s=1280x720:r=30:d=1",
        args=("-c:v", "libx264", "-preset", FAST, "-pix_fmt", "yuv420p10le"),
    )
    hevc = run_fix(source, tmp_path / "hevc.mp4")
    assert_passes(hevc)
    stream = probe(tmp_path / "hevc.mp4", "stream=codec_name,profile,pix_fmt")["streams"][0]
    assert (stream["codec_name"], stream["profile"], stream["pix_fmt"]) == (
        "hevc",
        "Main 10",
        "yuv420p10le",
    )
    eight = run_fix(source, tmp_path / "h264.mp4", ten_bit="h264")
    assert_passes(eight)
    stream = probe(tmp_path / "h264.mp4", "stream=codec_name,pix_fmt")["streams"][0]
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert any("8-bit H.264" in note for note in eight.notes)


def test_the_result_says_what_was_written_with_vmaf_beside_ssim(tmp_path: Path) -> None:
    # 25 fps and too small: the lossless re-time rides along in the re-encode, and its words no
    # longer promise that every video packet stays.
    source = make(
        tmp_path / "small.mp4",
        "testsrc2=s=640x360:r=25:d=2.4",
        "sine=f=440:d=2.4",
        args=("-c:v", "libx264", "-preset", FAST, "-c:a", "aac", "-shortest"),
    )
    out = tmp_path / "out.mp4"
    done = run_cli("fix", "--json", "--preset", FAST, "-o", str(out), str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    Draft202012Validator(load_schema("fix.schema.json")).validate(document)
    got = document["results"][0]
    assert got["status"] == "fixed" and 0.97 <= got["ssim"] <= 1 and 90 <= got["vmaf"] <= 100
    assert got["written"] == {
        "size_bytes": os.stat(out).st_size,
        "video_codec": "h264",
        "profile": probe(out, "stream=profile")["streams"][0]["profile"],
        "bit_depth": 8,
        "width": 1280,
        "height": 720,
        "audio_codec": "aac",
    }
    retime = next(s for s in got["steps"] if s["action"] == "retime")
    assert not retime["lossless"] and "every video packet stays" not in retime["detail"]
    text = run_cli("fix", "--force", "--preset", FAST, "-o", str(out), str(source))
    assert text.returncode == 0
    assert ", VMAF " in text.stdout and "wrote " in text.stdout and "aac audio" in text.stdout


def test_a_re_encode_under_vmaf_90_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # A VMAF bar no lossy encode reaches stands in for a re-encode that lost the picture.
    source = make(
        tmp_path / "small.mp4",
        "testsrc2=s=640x360:r=30:d=2",
        args=("-c:v", "libx264", "-preset", FAST),
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_fix(source, out_dir / "out.mp4", min_vmaf=99.99)
    assert result.status == "unfixable" and "VMAF" in result.reason, result.reason
    assert result.vmaf is not None and result.vmaf < 99.99 and result.ssim is not None
    assert list(out_dir.iterdir()) == []


def test_dry_run_plans_only_what_the_ffmpeg_in_use_can_do(tmp_path: Path) -> None:
    # A small VVC clip needs a re-encode: the pinned FFmpeg 9 decodes VVC and plans it; Debian's
    # 5.1 (PREFLIGHT_FFMPEG) cannot, and the dry run says so instead of planning a failing run.
    source = make(
        tmp_path / "small_vvc.mp4",
        "testsrc2=s=640x360:r=30:d=1",
        args=("-c:v", "libvvenc", "-preset", "faster", "-qp", "32"),
    )
    planned = fix(source, tmp_path / "out.mp4", dry_run=True)
    assert planned.status == "planned", planned.reason
    assert {"scale", "extend"} <= {s.action for s in planned.steps}
    fixed = run_fix(source, tmp_path / "out.mp4", preset=FAST)
    assert_passes(fixed)
    debian = {**os.environ, "PREFLIGHT_FFMPEG": "/usr/bin/ffmpeg"}
    done = run_cli("fix", "--dry-run", "--json", str(source), env=debian)
    got = json.loads(done.stdout)["results"][0]
    assert got["status"] == "unfixable" and "no vvc decoder" in got["reason"], got


def test_when_ffmpeg_fails_the_json_still_lists_the_planned_steps(tmp_path: Path) -> None:
    source = make(
        tmp_path / "small.mp4",
        "testsrc2=s=640x360:r=30:d=2",
        args=("-c:v", "libx264", "-preset", FAST),
    )
    env = {**os.environ, "PREFLIGHT_FIX_TIMEOUT_S": "0.01"}  # every ffmpeg run times out
    done = run_cli("fix", "--json", "--preset", FAST, str(source), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    got = json.loads(done.stdout)["results"][0]
    assert got["status"] == "unfixable" and "longer than" in got["reason"]
    assert [s["action"] for s in got["steps"]] == ["scale"]
    assert got["steps"][0]["command"].startswith("ffmpeg ") and got["output"] is None
    assert not list(tmp_path.glob("small.fixed*"))


def test_a_step_a_later_round_redid_or_re_encoded_is_not_reported_lossless() -> None:
    # As fix ran it on main: a stream-copy cut that overshot (round 1, "lossless"), then an
    # exact cut re-encoded (round 2). Both were listed, the first as [lossless].
    retime = Step(
        "retime",
        "fps.not_allowed",
        True,
        "25 → 24 fps by rescaling timestamps: every video packet stays, the clip plays 4% slower",
    )
    copy_cut = Step("cut", "duration.out_of_range", True, "cut the tail: 6.000 s → 5.5 s")
    exact = Step("cut", "duration.out_of_range", False, "cut the tail (exact cut, re-encoded)")
    rounds = [
        (Plan(steps=(retime, copy_cut)), "ffmpeg one"),
        (Plan(steps=(exact,), reencode=True), "ffmpeg two"),
    ]
    steps, notes = surviving_steps(rounds)
    assert [(s.action, s.lossless, s.command) for s in steps] == [
        ("retime", False, "ffmpeg one"),
        ("cut", False, "ffmpeg two"),
    ]
    assert "every video packet stays" not in steps[0].detail
    assert len(notes) == 1 and "did not survive" in notes[0] and "round 1" in notes[0]


def test_subtitles_follow_a_lossless_retime(tmp_path: Path) -> None:
    # 25 -> 24 fps by rescaling timestamps: a cue at 2.0-2.5 s plays at 2.083-2.604 s, with the
    # picture (the subtitles were dropped; -itsscale alone moved the start but not the duration).
    subtitles = tmp_path / "subs.srt"
    subtitles.write_text("1\n00:00:02,000 --> 00:00:02,500\nhello\n")
    source = tmp_path / "pal.mov"
    subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25:d=3"),
            *("-i", str(subtitles), "-map", "0", "-map", "1", "-c:v", "libx264"),
            *("-preset", FAST, "-c:s", "mov_text", str(source)),
        ],
        check=True,
        timeout=120,
    )
    out = tmp_path / "out.mp4"
    result = run_fix(source, out)
    assert_passes(result)
    assert result.lossless and [s.action for s in result.steps] == ["retime"]
    done = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json", "-select_streams", "s"),
            *("-show_entries", "packet=pts_time,duration_time", str(out)),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    cues = [p for p in json.loads(done.stdout)["packets"] if float(p["duration_time"]) < 1]
    assert len(cues) == 1
    start, length = float(cues[0]["pts_time"]), float(cues[0]["duration_time"])
    assert start == pytest.approx(2.0 * 25 / 24, abs=0.002)
    assert length == pytest.approx(0.5 * 25 / 24, abs=0.002)
