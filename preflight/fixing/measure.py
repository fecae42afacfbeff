"""Measuring for fix: the stream details a plan needs (PyAV, in a bounded worker), SSIM of a
re-encode against its source and the hashes of the video packets (framemd5) that prove a lossless
step kept them (the pinned ffmpeg, bounded by spawn.py).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import graph, spawn
from .deps import ProbeError, ProbeLimits, read_stream_json
from .plan import StreamInfo

_SSIM_ALL = re.compile(rb"All:([0-9.]+)")


def read_streams(path: str, cancel: threading.Event | None = None) -> StreamInfo:
    """Time base, pixel format and start of the first real video stream, and the first audio
    codec: read by PyAV (no ffprobe) in a bounded worker, from the headers alone."""
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
    video: dict[str, Any] = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        {},
    )
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
    )


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
    """How to lay the source over the output so frames meet: the output's speed and geometry."""

    rate: Fraction  # compare at the source's nominal rate
    size: tuple[int, int]  # the source scaled to this (the output's picture, before padding)
    speed: Fraction = Fraction(1)  # output time = source time / speed
    padded: tuple[int, int] | None = None  # then padded to this (the output's frame)


def ssim(
    output: str,
    source: str,
    align: Alignment,
    *,
    timeout_s: float,
    cancel: threading.Event | None = None,
) -> float:
    """SSIM (all planes) of `output` against `source`, over the frames both have."""
    rate = str(align.rate)
    out_chain = f"setpts=(PTS-STARTPTS)*{align.speed},fps={rate},format=yuv420p"
    src_chain = f"setpts=PTS-STARTPTS,fps={rate},scale={align.size[0]}:{align.size[1]}"
    if align.padded is not None:
        src_chain += f",pad={align.padded[0]}:{align.padded[1]}:(ow-iw)/2:(oh-ih)/2"
    lavfi = f"[0:V:0]{out_chain}[o];[1:V:0]{src_chain},format=yuv420p[s];[o][s]ssim=shortest=1"
    argv = [
        spawn.find_ffmpeg(),
        "-hide_banner",
        "-nostdin",
        # No filter re-creation on a frame-size change (it would reset STARTPTS): scale copes.
        "-reinit_filter",
        "0",
        "-noautorotate",
        "-max_pixels",
        str(spawn.MAX_FRAME_PIXELS),
        "-i",
        graph.url(output),
        "-reinit_filter",
        "0",
        "-noautorotate",
        "-max_pixels",
        str(spawn.MAX_FRAME_PIXELS),
        "-i",
        graph.url(source),
        "-filter_complex",
        lavfi,
        "-f",
        "null",
        "-",
    ]
    _, err = spawn.run(argv, timeout_s, cancel)
    found = _SSIM_ALL.findall(err)
    if not found:
        raise spawn.FfmpegFailed("ffmpeg printed no SSIM (no frames to compare)")
    return float(found[-1])


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
