"""ffmpeg for fix: a Plan turned into ffmpeg-python graphs (argv); spawn.py runs them."""

from __future__ import annotations

import base64
import math
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import filtertext
from .picture import Picture, apply
from .plan import Plan
from .spawn import MAX_FRAME_PIXELS, FfmpegFailed, FixCancelled, find_ffmpeg

__all__ = [
    "DEFAULT_PRESET",
    "FfmpegFailed",
    "FixCancelled",
    "Pass",
    "build",
    "scratch_count",
    "show",
]

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


def scratch_count(plan: Plan) -> int:
    """How many temp files build() needs for `plan` besides the target."""
    if plan.reencode:
        return 0
    if plan.smart_cut is not None:
        return 2
    return 1 if plan.grid is not None else 0


def build(
    plan: Plan,
    source: str,
    target: str,
    *,
    preset: str = DEFAULT_PRESET,
    scratch: str | Sequence[str] | None = None,
) -> list[Pass]:
    """The passes that carry out `plan` from `source` into `target` (an MP4, whatever its name).

    `scratch` holds the temp paths (scratch_count of them) for a plan run in several passes: a
    lossless re-time's first pass, a smart cut's copied and re-encoded parts.
    """
    ffmpeg_bin = find_ffmpeg()
    source, target = url(source), url(target)
    listed = [scratch] if isinstance(scratch, str) else list(scratch or ())
    temps = [url(path) for path in listed]
    if plan.reencode:
        graphs = [_reencode(plan, source, target, preset)]
    elif plan.smart_cut is not None and len(temps) >= 2:
        graphs = _smart_cut(plan, source, target, temps[0], temps[1], preset)
    elif plan.grid is not None and temps:
        # Two runs even when the source's clock is finer than the grid: snapping and scaling in
        # the source's ticks in one run left a 25 fps x264 clip (1/12800) with colliding DTS
        # (tests/test_fix.py::test_a_default_x264_25_fps_clip_is_retimed_losslessly).
        graphs = [_onto_grid(plan, source, temps[0]), _copy(plan, temps[0], target, seek=False)]
    else:
        graphs = [_copy(plan, source, target, seek=True)]
    passes = []
    for one in graphs:
        compiled = filtertext.simple_filtergraphs(one.compile(cmd=ffmpeg_bin))
        argv = filtertext.without_brand_tags(_bounded_inputs(compiled))
        argv[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        passes.append(Pass(argv))
    return passes


# Global and per-stream tags kept: creation_time, the GPS location, make/model (Apple's
# com.apple.quicktime.* keys need use_metadata_tags in MP4), and the timecode, from which the
# muxer writes a tmcd track again.
KEEP_METADATA = {"map_metadata": 0, "movflags": "+faststart+use_metadata_tags"}


def _bounded_inputs(argv: list[str]) -> list[str]:
    """-max_pixels before every -i: each decoder refuses a frame larger than any real video's."""
    bounded: list[str] = []
    for arg in argv:
        if arg == "-i":
            bounded += ["-max_pixels", str(MAX_FRAME_PIXELS)]
        bounded.append(arg)
    return bounded


def _scaled(expr: str, speed: Fraction) -> str:
    inverse = 1 / speed
    return f"{expr}*{inverse.numerator}/{inverse.denominator}"


def _input(
    plan: Plan,
    source: str,
    *,
    seek: bool = True,
    read_s: float | None = None,
    reinit: bool = True,
    offset_s: float | None = None,
) -> Any:
    """The source as an ffmpeg input, started at the video's first frame.

    A video that starts after the audio (an edit list) would otherwise be preceded by copies of
    its first frame, and a -t or -ss on the output counts from the container's start, not the
    video's. -ss before -i moves both streams by the same amount (sync kept; the audio before
    the first picture goes), where setpts=PTS-STARTPTS on each chain would shift them apart.
    """
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    options: dict[str, Any] = {}
    if not reinit:
        # One filter graph for the whole stream (Picture re-evaluates per frame): a re-created
        # graph would restart the fps filter midway.
        options["reinit_filter"] = 0
    if seek and plan.seek_s:
        options["ss"] = f"{plan.seek_s:.6f}"
    if read_s is not None:
        options["t"] = f"{read_s:.6f}"
    if offset_s is not None:
        options["itsoffset"] = f"{offset_s:.6f}"
    return ffmpeg.input(source, noautorotate=None, **options)


class _Laps:
    """The source played as many times as --extend loop needs, each lap from the video's first
    frame; read like an input: the video and audio are the laps joined, anything else (the
    subtitles, for the first lap) comes from the first lap's input.

    Laps are the concat filter's segments, each a fresh input sought like _input: -stream_loop
    restarted at the container's start (before a late video's first frame) and only after the
    longer stream ended, so the picture held its last frame ~67 ms at each join while the audio
    finished. Here each lap's audio is cut or padded to the video's own length, so the next lap
    starts right after the last frame.
    """

    def __init__(self, plan: Plan, source: str) -> None:
        import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

        assert plan.extend_to_s is not None
        lap = plan.loop_s or plan.extend_to_s
        laps = max(1, math.ceil(plan.extend_to_s * float(plan.speed) / lap - 1e-6))
        self.video_map = plan.video_map
        self.inputs: list[Any] = []
        parts: list[Any] = []
        for index in range(laps):
            # -itsoffset puts each lap where it plays; it also keeps ffmpeg-python from merging
            # the laps' inputs, which are otherwise the same node.
            inp = _input(plan, source, reinit=False, offset_s=index * lap)
            self.inputs.append(inp)
            parts.append(inp[plan.video_map].filter("setpts", "PTS-STARTPTS"))
            if plan.audio != "none":
                audio = _audio_in(inp).filter("asetpts", "PTS-STARTPTS")
                parts.append(audio.filter("atrim", end=f"{lap:.6f}").filter("apad", whole_dur=lap))
        self.audio_on = plan.audio != "none"
        self.joined = ffmpeg.concat(*parts, n=laps, v=1, a=int(self.audio_on)).node

    def __getitem__(self, key: str) -> Any:
        if key == self.video_map:
            return self.joined[0]
        if key == "a:0" and self.audio_on:
            return self.joined[1]
        return self.inputs[0][key]


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
    streams = [inp[plan.video_map]] + ([_audio_in(inp)] if plan.audio != "none" else [])
    # An MP4 scratch file, like the output: QuickTime refuses VP9, AV1 and Opus ("vp9 only
    # supported in MP4"), and only codecs MP4 holds reach a lossless re-time. Audio MP4 cannot
    # hold (a camera's PCM, a Matroska FLAC or Vorbis) goes in as ALAC, lossless, and the second
    # pass re-times it into AAC anyway.
    audio_codec = "copy" if plan.audio == "copy" else "alac"
    options: dict[str, Any] = {"c:v": "copy", "c:a": audio_codec}
    streams += _extras(plan, inp, options, from_source=True, retime=False)
    return ffmpeg.output(*streams, target, **options, f="mp4", video_track_timescale=plan.grid[0])


def _copy(plan: Plan, source: str, target: str, *, seek: bool) -> Any:
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    # A cut reads that much of the input (its clock, before re-timing): the video's rescaled
    # timestamps and the audio after atempo then both end at cut_s. An output -t would cut the
    # re-timed audio on the input's clock too, 4% short on a 25 -> 24 re-time. A copy cut ends
    # on a packet count instead (-frames:v, cuts.plan_cut): -t alone kept the B-frames decoded
    # before the limit but shown after it (5.634 s for 5.5 s); half a frame more read keeps
    # -t from dropping any of the counted packets.
    read_s = None
    if plan.cut_s is not None:
        read_s = plan.cut_s * float(plan.speed)
        if plan.cut_frames is not None and plan.source_rate:
            read_s += 0.5 / float(plan.source_rate)
    inp = _input(plan, source, seek=seek, read_s=read_s)
    video = inp[plan.video_map if seek else "V:0"]  # not seek: our scratch, one video stream
    options: dict[str, Any] = {"c:v": "copy", "f": "mp4", "movflags": "+faststart"}
    if plan.cut_frames is not None:
        options["frames:v"] = plan.cut_frames
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
    streams += _extras(plan, inp, options, from_source=seek)
    return ffmpeg.output(*streams, target, **options)


def _smart_cut(
    plan: Plan, source: str, target: str, head: str, tail: str, preset: str
) -> list[Any]:
    """Three runs: the first packets copied into `head`, the frames from the join to the end
    encoded into `tail` (libx264, no B-frames, SPS/PPS id 1 sent in-band so they cannot be
    mistaken for the source's), then both joined by the concat demuxer with the audio, every
    timestamp set by setts so the frames follow one another at the source's rate.
    """
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    cut = plan.smart_cut
    assert cut is not None and plan.cut_s is not None
    clock = {"video_track_timescale": cut.timescale} if cut.timescale else {}
    copied = ffmpeg.input(source, noautorotate=None)[plan.video_map].output(
        head, **{"c:v": "copy", "frames:v": cut.copy_frames, "f": "mp4"}, **clock
    )
    # Decoding starts at the keyframe before a point a second ahead of the join (-ss), not at
    # the file's start; -copyts keeps the timestamps trim picks the frames by.
    ahead = max(0.0, float(cut.join_pts * cut.time_base) - 1.0)
    frames = (
        ffmpeg.input(source, noautorotate=None, ss=f"{ahead:.6f}", copyts=None)[plan.video_map]
        .filter("trim", start_pts=cut.join_pts, end_pts=cut.end_pts)
        .filter("setpts", "PTS-STARTPTS")
    )
    encoded = frames.output(
        tail,
        **{
            "c:v": "libx264",
            "crf": CRF["libx264"],
            "preset": preset,
            "pix_fmt": plan.pix_fmt,
            "profile:v": cut.profile,
            "x264-params": "sps-id=1:repeat-headers=1:bframes=0",
            "fps_mode": "passthrough",
            "f": "mp4",
        },
        **clock,
    )
    listing = "".join(f"file '{_concat_quoted(p)}'\n" for p in (head, tail))
    script = "data:text/plain;base64," + base64.b64encode(listing.encode()).decode("ascii")
    joined = ffmpeg.input(script, f="concat", safe=0, auto_convert=0)["v:0"]
    inp = _input(plan, source, read_s=plan.cut_s)
    k, frame = cut.copy_frames, cut.frame_ticks
    after = f"{cut.join_pts}+(N-{k})*{frame}"

    def pick(copied_value: str, joined_value: str) -> str:
        return f"if(lt(N\\,{k})\\,{copied_value}\\,{joined_value})"

    options: dict[str, Any] = {
        "c:v": "copy",
        "bsf:v": f"setts=pts={pick('PTS', after)}:dts={pick('DTS', f'{after}-{cut.dts_shift}')}"
        f":duration={pick('DURATION', str(frame))}",
        "f": "mp4",
        "movflags": "+faststart",
        **clock,
    }
    ending = ("atrim", {"end": f"{plan.cut_s:.6f}"})
    streams = [joined, *_audio_out(plan, inp, options, ending)]
    streams += _extras(plan, inp, options, from_source=True)
    return [copied, encoded, ffmpeg.output(*streams, target, **options)]


def _concat_quoted(path: str) -> str:
    """A path inside the concat demuxer's single quotes (a quote is closed, escaped, reopened)."""
    return path.replace("'", "'\\''")


def _extras(
    plan: Plan, inp: Any, options: dict[str, Any], *, from_source: bool, retime: bool = True
) -> list[Any]:
    """What rides along with the picture and sound: text subtitles as mov_text, and the metadata
    (creation time, location, make/model, timecode), their options set in `options`."""
    options.update(KEEP_METADATA)
    if not plan.subtitles:
        return []
    options["c:s"] = "mov_text"
    if retime and plan.speed != 1:
        # The subtitles follow the picture's new clock, their durations too (-itsscale moved
        # only the timestamps, and MP4 stores durations: cue 3 came 0.1 s early after 25 -> 24).
        options["bsf:s"] = (
            f"setts=pts={_scaled('PTS', plan.speed)}:dts={_scaled('DTS', plan.speed)}"
            f":duration={_scaled('DURATION', plan.speed)}"
        )
    if not from_source:  # a scratch file of ours: its subtitles are the ones kept
        return [inp["s?"]]
    return [inp[str(index)] for index in plan.subtitles]


def _reencode(plan: Plan, source: str, target: str, preset: str) -> Any:
    import ffmpeg  # ffmpeg-python builds the argv (we run the child); loaded on first use

    looping = plan.extend_to_s is not None and plan.extend_mode == "loop"
    inp: Any = _Laps(plan, source) if looping else _input(plan, source, reinit=False)
    picture = Picture.of(plan)
    video = inp[plan.video_map]
    if picture is not None:
        video = picture.flatten(video)
    if plan.speed != 1:
        # PTS, not PTS-STARTPTS: a frame-size change re-creates the filters midway, and a reset
        # STARTPTS would send the timestamps back to zero (the fps filter then drops the rest).
        video = video.filter("setpts", f"PTS*{(1 / plan.speed)}")
    if plan.target_rate is not None:
        video = video.filter("fps", fps=str(plan.target_rate))
    if plan.extend_to_s is not None and plan.extend_mode == "freeze":
        video = video.filter("tpad", stop_mode="clone", stop_duration=f"{plan.extend_to_s:g}")
    if picture is not None:
        video = apply(video, picture.fit())
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
    if plan.encoder == "libx265" and plan.pix_fmt == "yuv420p10le":
        options["profile:v"] = "main10"
    freezing = plan.extend_to_s is not None and plan.extend_mode == "freeze"
    # apad: silence to the new length; -t ends it.
    streams = [video, *_audio_out(plan, inp, options, ("apad", {}) if freezing else None)]
    streams += _extras(plan, inp, options, from_source=True)
    end = plan.cut_s if plan.cut_s is not None else plan.extend_to_s
    if end is not None:
        options["t"] = f"{end:g}"
    return ffmpeg.output(*streams, target, **options)
