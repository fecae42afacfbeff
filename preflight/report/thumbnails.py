"""Thumbnails for the HTML report: the first keyframe of a local video as a small JPEG.

Decoded by the bounded worker pool (PyAV's FFmpeg in warm child processes, one per core), or by
one ffmpeg process per file when PyAV cannot load. Never raises for a bad source: no picture (URL,
no video, a broken or hostile file) is a note why.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProbeError
from ..probing.limits import ProbeLimits
from ..sources import is_url
from ..verdict import Result

JPEG_PREFIX = "data:image/jpeg;base64,"
# Set when a worker found that PyAV cannot load: it will not load for the next file either, so
# the rest of the run goes straight to ffmpeg instead of starting a worker that fails each time.
_PYAV_MISSING = threading.Event()


@dataclass(frozen=True)
class Thumbnail:
    data_uri: str | None  # data:image/jpeg;base64,... or None for the placeholder
    note: str = ""  # why there is no picture, shown on the placeholder


def local_video(result: Result) -> Path | Thumbnail:
    """The readable local video to take a picture of, or a placeholder saying why there is none."""
    facts = result.facts
    if is_url(result.source):
        return Thumbnail(None, "no preview for a URL")
    if facts is None or facts.video_tracks == 0 or not facts.width:
        return Thumbnail(None, "no video to preview")
    path = Path(result.source)
    if not path.is_file() or not os.access(path, os.R_OK):
        return Thumbnail(None, "file not readable")
    return path


def grab_frame(result: Result, *, box: tuple[int, int], timeout_s: float) -> Thumbnail:
    """A JPEG of the first keyframe of a local video, or a placeholder saying why not.

    The frame fits inside `box` (width, height) with its display aspect kept; the decoder gets
    `timeout_s` and the probes' default memory bound.
    """
    path = local_video(result)
    if isinstance(path, Thumbnail):
        return path
    if _PYAV_MISSING.is_set():
        return grab_with_ffmpeg(path, box=box, timeout_s=timeout_s)
    from ..probing import worker

    try:
        jpeg = worker.thumbnail(str(path.resolve()), box, ProbeLimits(timeout_s=timeout_s))
    except ProbeError as exc:
        if exc.kind == "backend_missing":
            _PYAV_MISSING.set()
            return grab_with_ffmpeg(path, box=box, timeout_s=timeout_s)
        if exc.kind in ("timeout", "resource_limit"):
            return Thumbnail(None, f"no preview: the decoder overran its bounds ({exc.kind})")
        return Thumbnail(None, "no preview: no frame could be decoded")
    return Thumbnail(JPEG_PREFIX + base64.b64encode(jpeg).decode("ascii"))


def grab_with_ffmpeg(path: Path, *, box: tuple[int, int], timeout_s: float) -> Thumbnail:
    """The same picture from one ffmpeg process: for a machine where PyAV cannot load."""
    executable = shutil.which("ffmpeg")
    if executable is None:
        return Thumbnail(None, "no preview: neither PyAV nor ffmpeg is available")
    width, height = box
    # "file:" keeps ffmpeg from reading a name like "concat:a|b" or "http:..." as a protocol;
    # "scale=iw*sar" first so that anamorphic video is shown with its display shape. subprocess
    # passes a name that is not UTF-8 (surrogate escapes) on as the original bytes.
    args = [
        executable,
        "-nostdin",
        "-loglevel",
        "error",
        "-skip_frame",
        "nokey",
        "-i",
        f"file:{path.resolve()}",
        "-vf",
        f"scale=iw*sar:ih,scale={width}:{height}:force_original_aspect_ratio=decrease",
        "-frames:v",
        "1",
        "-f",
        "image2",
        "-c:v",
        "mjpeg",
        "-q:v",
        "5",
        "pipe:",
    ]
    try:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return Thumbnail(None, f"no preview: ffmpeg took over {timeout_s:g} s")
    except OSError:
        return Thumbnail(None, "no preview: ffmpeg could not run")
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        return Thumbnail(None, "no preview: ffmpeg could not decode a frame")
    return Thumbnail(JPEG_PREFIX + base64.b64encode(done.stdout).decode("ascii"))
