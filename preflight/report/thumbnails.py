"""Thumbnails for the HTML report: one JPEG frame from the middle of a local video, via ffmpeg.

Never raises for a bad source: no picture (URL, no video, ffmpeg missing or stuck) is a note why.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from ..policy.url import is_url
from ..verdict import Result


@dataclass(frozen=True)
class Thumbnail:
    data_uri: str | None  # data:image/jpeg;base64,... or None for the placeholder
    note: str = ""  # why there is no picture, shown on the placeholder


def grab_frame(result: Result, *, box: tuple[int, int], timeout_s: float) -> Thumbnail:
    """A JPEG of the frame in the middle of a local video, or a placeholder saying why not.

    The frame fits inside `box` (width, height) with its aspect kept; ffmpeg gets `timeout_s`.
    """
    facts = result.facts
    if is_url(result.source):
        return Thumbnail(None, "no preview for a URL")
    if facts is None or facts.video_tracks == 0 or not facts.width:
        return Thumbnail(None, "no video to preview")
    path = Path(result.source)
    if not path.is_file() or not os.access(path, os.R_OK):
        return Thumbnail(None, "file not readable")
    executable = shutil.which("ffmpeg")
    if executable is None:
        return Thumbnail(None, "no preview: ffmpeg not found")
    middle_s = (facts.duration or 0.0) / 2
    width, height = box
    # "file:" keeps ffmpeg from reading a name like "concat:a|b" or "http:..." as a protocol;
    # "scale=iw*sar" first so that anamorphic video is shown with its display shape.
    # ffmpeg-python hashes its arguments as strict UTF-8, so a name that is not UTF-8 (surrogate
    # escapes) would raise there: it builds the command around a stand-in, swapped for the real
    # path afterwards (subprocess passes surrogate escapes on as the original bytes).
    stand_in = "file:PREFLIGHT-INPUT"
    args = (
        ffmpeg.input(stand_in, ss=f"{middle_s:.3f}")
        .video.filter("scale", "iw*sar", "ih")
        .filter("scale", width, height, force_original_aspect_ratio="decrease")
        .output("pipe:", vframes=1, format="image2", vcodec="mjpeg", **{"q:v": 4})
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd=executable)
    )
    args = [f"file:{path.resolve()}" if arg == stand_in else arg for arg in args]
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Thumbnail(None, f"no preview: ffmpeg took over {timeout_s:g} s")
    except OSError:
        return Thumbnail(None, "no preview: ffmpeg could not run")
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        return Thumbnail(None, "no preview: ffmpeg could not decode a frame")
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(done.stdout).decode("ascii"))
