"""The MediaInfo backend: libmediainfo in a bounded worker process, read with a small template.

A text template of just the fields we use parses about twice as fast as pymediainfo's full output.
libmediainfo has no bounds of its own (a 9 KB file can take minutes and gigabytes), so it runs only
in the worker pool (worker/), under a memory bound and a deadline; this process never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..facts import BackendReading, as_float
from .limits import ProbeLimits

if TYPE_CHECKING:
    from .snapshot import Snapshot
from .names import codec_from_mediainfo, container_from_mediainfo

# How far into a file MediaInfo reads. bench/probe.py measures each value: on the corpus 0.1 and
# 0.25 cost what 0 costs (~1.5 ms/file), but 0 changes one file's facts; 0.5 and up cost twice
# as much for the same facts (timing comes from our own box reader). 0.25 keeps a margin.
PARSE_SPEED = 0.25

TEMPLATE = (
    "General;G|%Format%|%Duration%|%Cover%\\n\n"
    "Video;V|%Format%|%Width%|%Height%|%Rotation%|%FrameRate%|%Duration%|%FrameCount%\\n\n"
    "Audio;A\\n\n"
)


def read(
    path: str, *, parse_speed: float | None = None, limits: ProbeLimits | None = None
) -> BackendReading:
    """MediaInfo's reading of a local file, parsed in a bounded worker; raises ProbeError."""
    return _read({"path": path}, parse_speed, limits, None)


def read_snapshot(
    snapshot: Snapshot, *, parse_speed: float | None = None, limits: ProbeLimits | None = None
) -> BackendReading:
    """MediaInfo's reading of bytes fetched already (a remote file's index), in a worker."""
    return _read({}, parse_speed, limits, snapshot)


def _read(
    header: dict[str, object],
    parse_speed: float | None,
    limits: ProbeLimits | None,
    snapshot: Snapshot | None,
) -> BackendReading:
    from . import worker  # deferred: a cache hit or an MP4 read by the box reader needs no worker

    speed = PARSE_SPEED if parse_speed is None else parse_speed
    job = {**header, "parse_speed": speed, "template": TEMPLATE}
    text = worker.parse(job, limits or ProbeLimits(), snapshot)
    return parse_template_output(text)


def parse_template_output(text: str) -> BackendReading:
    reading = BackendReading(backend="mediainfo")
    first_video = True
    for line in text.splitlines():
        parts = line.split("|")
        if parts[0] == "G" and len(parts) >= 3:
            reading.container = container_from_mediainfo(parts[1]) if parts[1] else ""
            reading.container_duration = _seconds(parts[2])
        elif parts[0] == "V" and len(parts) >= 8:
            reading.video_tracks += 1
            if not first_video:
                continue
            first_video = False
            reading.video_codec = codec_from_mediainfo(parts[1]) if parts[1] else ""
            reading.width = _int(parts[2])
            reading.height = _int(parts[3])
            reading.rotation = round(float(parts[4] or 0)) % 360
            reading.fps = as_float(parts[5])
            reading.duration = _seconds(parts[6])
            reading.frame_count = _int(parts[7])
        elif parts[0] == "A":
            reading.has_audio = True
    return reading


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _seconds(milliseconds: str) -> float | None:
    value = as_float(milliseconds)
    return None if value is None else value / 1000
