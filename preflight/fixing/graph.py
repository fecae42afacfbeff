"""ffmpeg for fix: a Plan turned into ffmpeg-python graphs (argv); spawn.py runs them."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .plan import Plan
from .spawn import MAX_FRAME_PIXELS, FfmpegFailed, FixCancelled, find_ffmpeg

__all__ = ["DEFAULT_PRESET", "FfmpegFailed", "FixCancelled", "Pass", "build", "show"]

CRF = {"libx264": 18, "libx265": 20}  # visually lossless at either encoder's scale
DEFAULT_PRESET = "veryfast"  # chosen by bench/fix.py: see the README's fix section
AUDIO_BITRATE = "192k"


@dataclass(frozen=True)
class Pass:
    """One ffmpeg run."""

    argv: list[str]


def url(path: str) -> str:
    """A path as ffmpeg must be given it: `file:` and absolute. ffmpeg reads a name as a URL
    (`concat:a.mov|b.mov` and `file:other.mp4` open other files) and a leading `-` as an option
    (`-report`); `file:/abs/...` is neither."""
    return "file:" + os.path.abspath(path)


def show(argv: list[str], names: dict[str, str]) -> str:
    """The command line as a person would type it: `ffmpeg`, and temp paths under their names."""
    shown = ["ffmpeg", *(_shown(arg, names) for arg in argv[1:])]
    return shlex.join(shown)


def _shown(arg: str, names: dict[str, str]) -> str:
    path = arg.removeprefix("file:")
    return url(names[path]) if arg.startswith("file:") and path in names else arg


def build(
    plan: Plan,
    source: str,
    target: str,
    *,
    preset: str = DEFAULT_PRESET,
    scratch: str | None = None,
) -> list[Pass]:
    """The passes that carry out `plan` from `source` into `target` (an MP4, whatever its name).

    `scratch` is a temp path for the lossless re-time's first pass, when the plan needs one.
    """
    ffmpeg_bin = find_ffmpeg()
    source, target = url(source), url(target)
    scratch = url(scratch) if scratch is not None else None
    if plan.reencode:
        graphs = [_reencode(plan, source, target, preset)]
    elif plan.grid is not None and scratch is not None:
        # Two runs even when the source's clock is finer than the grid: snapping and scaling in
        # the source's ticks in one run left a 25 fps x264 clip (1/12800) with colliding DTS
        # (tests/test_fix.py::test_a_default_x264_25_fps_clip_is_retimed_losslessly).
        graphs = [_onto_grid(plan, source, scratch), _copy(plan, scratch, target, seek=False)]
    else:
        graphs = [_copy(plan, source, target, seek=True)]
    passes = []
    for one in graphs:
        argv = _bounded_inputs(_simple_filtergraphs(one.compile(cmd=ffmpeg_bin)))
        argv[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        passes.append(Pass(argv))
    return passes


def _bounded_inputs(argv: list[str]) -> list[str]:
    """-max_pixels before every -i: each decoder refuses a frame larger than any real video's."""
    bounded: list[str] = []
    for arg in argv:
        if arg == "-i":
            bounded += ["-max_pixels", str(MAX_FRAME_PIXELS)]
        bounded.append(arg)
    return bounded


def _simple_filtergraphs(argv: list[str]) -> list[str]:
    """ffmpeg-python writes every filter chain as -filter_complex; turn our linear chains back
    into -map 0:V:0 -vf … / -map 0:a:0 -af …. Why: ffmpeg 5.1 copies the input stream's side
    data (the display matrix: rotation) only to outputs of a simple filtergraph.
    """
    if "-filter_complex" not in argv:
        return argv
    at = argv.index("-filter_complex")
    chains: dict[str, tuple[str, list[str]]] = {}  # output label -> (input stream, filters)
    for part in argv[at + 1].split(";"):
        label_in, rest = part[1:].split("]", 1)
        body, label_out = rest.rsplit("[", 1)
        source, filters = chains.pop(label_in, (label_in, []))
        chains[label_out.rstrip("]")] = (source, [*filters, body])
    out = argv[:at] + argv[at + 2 :]
    rewritten: list[str] = []
    index = 0
    while index < len(out):
        arg = out[index]
        if arg == "-map" and out[index + 1].startswith("[") and out[index + 1][1:-1] in chains:
            source, filters = chains[out[index + 1][1:-1]]
            flag = "-vf" if ":V:" in source or ":v:" in source else "-af"
            rewritten += ["-map", source, flag, ",".join(filters)]
            index += 2
            continue
        rewritten.append(arg)
        index += 1
    return rewritten


def _scaled(expr: str, speed: Fraction) -> str:
    inverse = 1 / speed
    return f"{expr}*{inverse.numerator}/{inverse.denominator}"


def _input(
    plan: Plan, source: str, *, seek: bool = True, loop: bool = False, read_s: float | None = None
) -> Any:
    """The source as an ffmpeg input, started at the video's first frame.

    A video that starts after the audio (an edit list) would otherwise be preceded by copies of
    its first frame, and a -t or -ss on the output counts from the container's start, not the
    video's. -ss before -i moves both streams by the same amount (sync kept; the audio before
    the first picture goes), where setpts=PTS-STARTPTS on each chain would shift them apart.
    """
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    options: dict[str, Any] = {"stream_loop": -1} if loop else {}
    if seek and plan.seek_s:
        options["ss"] = f"{plan.seek_s:.6f}"
    if read_s is not None:
        options["t"] = f"{read_s:.6f}"
    return ffmpeg.input(source, noautorotate=None, **options)


def _audio_in(inp: Any) -> Any:
    return inp["a:0"]


def _audio_out(
    plan: Plan, inp: Any, options: dict[str, Any], ending: tuple[str, dict[str, str]] | None
) -> list[Any]:
    """The audio stream for the output as the plan has it (none, copied, or AAC re-timed by
    atempo and then given the `ending` filter), its codec options set in `options`."""
    if plan.audio == "copy":
        options["c:a"] = "copy"
        return [_audio_in(inp)]
    if plan.audio != "aac":
        return []
    audio = _audio_in(inp)
    if plan.atempo is not None and plan.atempo != 1:
        audio = _atempo(audio, plan.atempo)
    if ending is not None:
        name, arguments = ending
        audio = audio.filter(name, **arguments)
    options.update({"c:a": "aac", "b:a": AUDIO_BITRATE})
    return [audio]


def _atempo(stream: Any, factor: Fraction) -> Any:
    # atempo takes 0.5-100 per instance: chain halvings for a strong slow-down.
    value = float(factor)
    while value < 0.5:
        stream = stream.filter("atempo", 0.5)
        value /= 0.5
    return stream.filter("atempo", f"{value:.9g}")


def _onto_grid(plan: Plan, source: str, target: str) -> Any:
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    assert plan.grid is not None
    inp = _input(plan, source)
    streams = [inp["V:0"]] + ([_audio_in(inp)] if plan.audio != "none" else [])
    # A QuickTime scratch file: it takes the track timescale as MP4 does, and PCM audio, which
    # the second pass re-times into AAC anyway. Copying a camera's PCM (or a Matroska FLAC) into
    # MP4 here would fail the whole fix.
    audio_codec = "copy" if plan.audio == "copy" else "pcm_s16le"
    return ffmpeg.output(
        *streams,
        target,
        **{"c:v": "copy", "c:a": audio_codec},
        f="mov",
        video_track_timescale=plan.grid[0],
        map_metadata=0,
    )


def _copy(plan: Plan, source: str, target: str, *, seek: bool) -> Any:
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    # A cut reads that much of the input (its clock, before re-timing): the video's rescaled
    # timestamps and the audio after atempo then both end at cut_s. An output -t would cut the
    # re-timed audio on the input's clock too, 4% short on a 25 -> 24 re-time.
    read_s = plan.cut_s * float(plan.speed) if plan.cut_s is not None else None
    inp = _input(plan, source, seek=seek, read_s=read_s)
    video = inp["V:0"]
    options: dict[str, Any] = {"c:v": "copy", "f": "mp4", "movflags": "+faststart"}
    if plan.grid is not None:
        # Each timestamp snapped to its frame on the grid, then scaled: whole ticks throughout.
        frame = plan.grid[1]
        tick = frame / plan.speed
        assert tick.denominator == 1
        options["bsf:v"] = (
            f"setts=pts=round(PTS/{frame})*{tick}:dts=round(DTS/{frame})*{tick}:duration={tick}"
        )
    elif plan.speed != 1:
        options["bsf:v"] = (
            f"setts=pts={_scaled('PTS', plan.speed)}:dts={_scaled('DTS', plan.speed)}"
            f":duration={_scaled('DURATION', plan.speed)}"
        )
    ending = ("atrim", {"end": f"{plan.cut_s:.6f}"}) if plan.cut_s is not None else None
    streams = [video, *_audio_out(plan, inp, options, ending)]
    return ffmpeg.output(*streams, target, **options)


def _reencode(plan: Plan, source: str, target: str, preset: str) -> Any:
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    looping = plan.extend_to_s is not None and plan.extend_mode == "loop"
    inp = _input(plan, source, loop=looping)
    video = inp["V:0"]
    if plan.speed != 1:
        # PTS, not PTS-STARTPTS: a frame-size change re-creates the filters midway, and a reset
        # STARTPTS would send the timestamps back to zero (the fps filter then drops the rest).
        video = video.filter("setpts", f"PTS*{(1 / plan.speed)}")
    if plan.target_rate is not None:
        video = video.filter("fps", fps=str(plan.target_rate))
    if plan.extend_to_s is not None and plan.extend_mode == "freeze":
        video = video.filter("tpad", stop_mode="clone", stop_duration=f"{plan.extend_to_s:g}")
    if plan.size is not None:
        video = video.filter("scale", plan.size[0], plan.size[1])
    elif plan.frame is not None:
        # A no-op on most files; on a stream whose frame size changes midway (WebM allows it)
        # it gives the encoder the one size it needs.
        video = video.filter("scale", plan.frame[0], plan.frame[1])
    if plan.padded is not None:
        video = video.filter("pad", plan.padded[0], plan.padded[1], "(ow-iw)/2", "(oh-ih)/2")
    options: dict[str, Any] = {
        "c:v": plan.encoder,
        "crf": CRF[plan.encoder],
        "preset": preset,
        "pix_fmt": plan.pix_fmt,
        "f": "mp4",
        "movflags": "+faststart",
    }
    if plan.encoder == "libx265":
        options.update({"tag:v": "hvc1", "x265-params": "log-level=error"})
    freezing = plan.extend_to_s is not None and plan.extend_mode == "freeze"
    # apad: silence to the new length; -t ends it.
    streams = [video, *_audio_out(plan, inp, options, ("apad", {}) if freezing else None)]
    end = plan.cut_s if plan.cut_s is not None else plan.extend_to_s
    if end is not None:
        options["t"] = f"{end:g}"
    return ffmpeg.output(*streams, target, **options)
