"""Measuring for fix: the stream details a plan needs (PyAV, in a bounded worker), SSIM and VMAF
of a re-encode against its source, and the hashes of the video packets (framemd5) that prove a
lossless step kept them (the pinned ffmpeg, bounded by spawn.py).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import graph, spawn
from .deps import Facts, ProbeError, ProbeLimits, read_stream_json
from .keep import Stream, StreamInfo
from .picture import Picture, lavfi
from .plan import Plan

_SSIM_ALL = re.compile(rb"All:([0-9.]+)")


def read_streams(
    path: str, cancel: threading.Event | None = None, *, track_id: int | None = None
) -> StreamInfo:
    """Time base, pixel format, codec and start of the judged video stream (the one whose
    container track ID is `track_id`, else the first real video stream), the first audio codec,
    and every stream, for what the output keeps: read by PyAV (no ffprobe) in a bounded worker,
    from the headers alone."""
    if cancel is not None and cancel.is_set():
        raise spawn.FixCancelled("cancelled")
    try:
        out = read_stream_json(path, ProbeLimits(), max_pixels=spawn.MAX_FRAME_PIXELS)
    except ProbeError as exc:
        raise spawn.FfmpegFailed(f"the streams could not be read: {exc}") from None
    try:
        found = json.loads(out)
    except ValueError:
        found = {}
    streams = found.get("streams") or []
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    judged = [s for s in videos if track_id is not None and _stream_id(s) == track_id]
    video: dict[str, Any] = (judged or videos or [{}])[0]
    audio: dict[str, Any] = next((s for s in streams if s.get("codec_type") == "audio"), {})
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width * height > spawn.MAX_FRAME_PIXELS:
        # The check read the container's size; the stream's own header says this.
        raise spawn.FfmpegFailed(
            f"the video stream holds {width}×{height} frames, larger than any real video's "
            f"({spawn.MAX_FRAME_PIXELS:,} pixels, H.264/HEVC level 6.2): not decoded"
        )
    time_base: Fraction | None
    try:
        time_base = Fraction(str(video.get("time_base")))
    except (ValueError, ZeroDivisionError):
        time_base = None
    return StreamInfo(
        time_base=time_base,
        pix_fmt=str(video.get("pix_fmt") or ""),
        audio_codec=str(audio.get("codec_name") or ""),
        video_start_s=_late_by(video, found.get("format") or {}),
        video_codec=str(video.get("codec_name") or ""),
        profile=str(video.get("profile") or ""),
        width=_int(video.get("width")),
        height=_int(video.get("height")),
        video_index=_int(video.get("index")),
        audio_index=_int(audio.get("index")),
        streams=tuple(
            Stream(
                index=_int(s.get("index")) or 0,
                kind=str(s.get("codec_type") or ""),
                codec=str(s.get("codec_name") or ""),
                tag=str(s.get("codec_tag_string") or ""),
                attached_pic=bool((s.get("disposition") or {}).get("attached_pic")),
            )
            for s in streams
        ),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _stream_id(stream: dict[str, Any]) -> int | None:
    """ffprobe's `id` (0x2 for MP4 track 2), which `-map 0:i:ID` selects."""
    try:
        return int(str(stream.get("id")), 0)
    except ValueError:
        return None


def _late_by(video: dict[str, Any], container: dict[str, Any]) -> float:
    """Seconds from the container's start (its earliest stream) to the video's first frame.

    An edit list can present the video seconds after the audio starts; ffmpeg's -ss on the input
    counts from the container's start, so this is the seek that lands on the video's first frame.
    """
    try:
        late = float(video["start_time"]) - float(container["start_time"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return late if late > 0 else 0.0


@dataclass(frozen=True)
class Alignment:
    """How to lay the source over the output so frames meet: the output's speed, and the picture
    chain the encode applied (each frame's shape kept), built the same way for the reference."""

    rate: Fraction  # compare at the source's nominal rate
    picture: Picture | None  # None: the source already has the output's frame size
    speed: Fraction = Fraction(1)  # output time = source time / speed
    source_map: str = "V:0"  # the judged track of the source
    # Compare from this many seconds into both: a smart cut's frames before its join are the
    # source's own packets, so only the frames it encoded are scored.
    from_s: float = 0.0

    @property
    def compare_at(self) -> tuple[int, int] | None:
        """The size both sides are scored at when the fix scaled the picture up: the source's
        own scale. An upscale's extra pixels hold nothing of the source, and scored at the
        output's size VMAF measured how x264 kept the interpolated texture (a 518x488 phone clip
        at CRF 18: 88 at 764x720, 92 at 518x488), not what the fix lost."""
        picture = self.picture
        if picture is None or picture.size[0] <= picture.frame[0]:
            return None
        factor = picture.frame[0] / picture.size[0]
        return 2 * round(picture.box[0] * factor / 2), 2 * round(picture.box[1] * factor / 2)


@dataclass(frozen=True)
class Quality:
    """The re-encode against its source over the frames both have: SSIM (all planes) and VMAF
    (None when this ffmpeg has no libvmaf)."""

    ssim: float
    vmaf: float | None
    frames: int  # frames compared (SSIM); VMAF scored every `vmaf_every`-th of them
    vmaf_every: int = 1


def alignment(plans: list[Plan], source: Facts) -> Alignment:
    """How the rounds' plans laid the source onto the output: their speeds multiplied, the rate to
    compare at, and the picture chain of the first re-encode (later ones keep its frame size)."""
    first = plans[0]
    speed = Fraction(1)
    for one in plans:
        speed *= one.speed
    # Compare at the source's own rate; a variable-rate source has none, so compare on the
    # output's constant grid (both sides then sample the same instants).
    rate = first.source_rate or Fraction(source.fps or 30).limit_denominator(1001)
    if source.fps_mode == "VFR" and plans[-1].target_rate is not None:
        rate = plans[-1].target_rate / speed
    encode = next((one for one in plans if one.reencode), first)
    joins = [one.smart_cut for one in plans if one.smart_cut is not None]
    from_s = 0.0
    if len(joins) == 1 and not any(one.reencode for one in plans) and speed == 1:
        from_s = float(joins[0].join_pts * joins[0].time_base)
    return Alignment(
        rate=rate,
        picture=Picture.of(encode),
        speed=speed,
        source_map=first.video_map,
        from_s=from_s,
    )


# VMAF scores every n-th frame (libvmaf's n_subsample) so that at most this many are scored: a
# 10 s clip at 30 fps is scored on every 3rd frame. SSIM still sees every frame, so a held or
# lost frame between two scored ones is caught there.
VMAF_FRAMES = 100


def quality(
    output: str,
    source: str,
    align: Alignment,
    *,
    frames: int,
    timeout_s: float,
    cancel: threading.Event | None = None,
) -> Quality:
    """SSIM and VMAF of `output` against `source` (`frames`: about how many the output has)."""
    rate = str(align.rate)
    every = max(1, -(-frames // VMAF_FRAMES))
    down = f"scale={align.compare_at[0]}:{align.compare_at[1]}," if align.compare_at else ""
    out_chain = f"setpts=(PTS-STARTPTS)*{align.speed},fps={rate},{down}format=yuv420p"
    parts = [f"[0:V:0]{out_chain}[o]"]
    src_chain = f"setpts=PTS-STARTPTS,fps={rate}"
    if align.picture is None:
        parts.append(f"[1:{align.source_map}]{src_chain},format=yuv420p[s]")
    else:  # the source laid out as the encode laid it out: alpha composited, each shape kept
        parts.append(f"[1:{align.source_map}]{src_chain}[flat_in]")
        parts.append(align.picture.flatten_text("flat_in", "flat"))
        fit = lavfi(align.picture.fit())
        parts.append(f"[flat]{fit},{down}format=yuv420p[s]")
    vmaf = has_vmaf()
    if vmaf:
        parts += [
            "[o]split[o1][o2]",
            "[s]split[s1][s2]",
            "[o1][s1]ssim=shortest=1[q1]",
            f"[o2][s2]libvmaf=n_subsample={every}:n_threads=2:shortest=1[q2]",
        ]
        outputs = ["-map", "[q1]", "-f", "null", "-", "-map", "[q2]", "-f", "null", "-"]
    else:
        parts += ["[o][s]ssim=shortest=1[q1]"]
        outputs = ["-map", "[q1]", "-f", "null", "-"]
    start = ["-ss", f"{align.from_s:.6f}"] if align.from_s else []
    argv = [
        spawn.find_ffmpeg(),
        "-hide_banner",
        "-nostdin",
        # One filter graph throughout: a frame-size change must not re-create it (that would
        # restart the scores); the Picture chain re-evaluates its sizes per frame instead.
        *("-reinit_filter", "0", "-noautorotate", "-max_pixels", str(spawn.MAX_FRAME_PIXELS)),
        *start,
        *("-i", graph.url(output)),
        *("-reinit_filter", "0", "-noautorotate", "-max_pixels", str(spawn.MAX_FRAME_PIXELS)),
        *start,
        *("-i", graph.url(source)),
        "-filter_complex",
        ";".join(parts),
        *outputs,
    ]
    _, err = spawn.run(argv, timeout_s, cancel)
    found = _SSIM_ALL.findall(err)
    if not found:
        raise spawn.FfmpegFailed("ffmpeg printed no SSIM (no frames to compare)")
    score = _VMAF.findall(err)
    compared = _FRAMES.findall(err)
    return Quality(
        ssim=float(found[-1]),
        vmaf=float(score[-1]) if vmaf and score else None,
        frames=int(compared[-1]) if compared else 0,
        vmaf_every=every,
    )


_VMAF = re.compile(rb"VMAF score: ([0-9.]+)")
_FRAMES = re.compile(rb"frame=\s*([0-9]+)")


_LISTED: dict[tuple[str, str], bytes] = {}  # (ffmpeg, -filters/-codecs) -> its listing


def _listing(what: str) -> bytes | None:
    """`ffmpeg -filters` or `-codecs` of the ffmpeg in use, kept once read; None when it could
    not be read (a bound it ran into): not cached, and nothing is concluded from it."""
    ffmpeg_bin = spawn.find_ffmpeg()
    key = (ffmpeg_bin, what)
    if key not in _LISTED:
        try:
            out, _ = spawn.run([ffmpeg_bin, "-hide_banner", what], 30.0)
        except spawn.FfmpegFailed:
            return None
        _LISTED[key] = out
    return _LISTED[key]


def has_vmaf() -> bool:
    """The ffmpeg in use has libvmaf (the pinned one does; a distribution's may not)."""
    return b" libvmaf " in (_listing("-filters") or b"")


def encoders() -> frozenset[str] | None:
    """The encoders the ffmpeg in use has (libx264, libx265…); None when it could not list them."""
    out = _listing("-encoders")
    if out is None:
        return None
    found = set()
    for line in out.decode("ascii", "replace").splitlines():
        fields = line.split()
        # " V....D libx264   libx264 H.264 / AVC ...": the type letter, then the name
        if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS" and fields[1] != "=":
            found.add(fields[1])
    return frozenset(found)


def decoders() -> frozenset[str] | None:
    """The codecs the ffmpeg in use can decode, so a plan never promises what it cannot do;
    None when ffmpeg could not list them."""
    out = _listing("-codecs")
    if out is None:
        return None
    found = set()
    for line in out.decode("ascii", "replace").splitlines():
        fields = line.split()
        # " DEV.LS h264  H.264 / AVC ...": D = a decoder exists
        if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] == "D" and fields[1] != "=":
            found.add(fields[1])
    return frozenset(found)


def packet_hashes(path: str, *, timeout_s: float = 120.0) -> list[tuple[int, str]]:
    """(size, md5) of every video packet in decode order, timestamps left out on purpose."""
    argv = [
        spawn.find_ffmpeg(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-max_pixels",
        str(spawn.MAX_FRAME_PIXELS),
        "-i",
        graph.url(path),
        "-map",
        "0:V:0",
        "-c",
        "copy",
        "-f",
        "framemd5",
        "-",
    ]
    out, _ = spawn.run(argv, timeout_s)
    hashes = []
    for line in out.decode("ascii", "replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        hashes.append((int(fields[4]), fields[5]))
    return hashes
