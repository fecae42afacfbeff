"""The Facts record: one typed set of media facts, the same from every probe backend.

Units are in the names' documentation: seconds, pixels, frames per second, clockwise degrees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

# The probe backends a caller may ask for (probing.BACKENDS spells the same four at run time).
BackendName = Literal["auto", "mediainfo", "ffprobe", "both"]
# What a Result says read the source: a backend asked for, or "boxes" (the box reader alone).
ReaderName = Literal["auto", "mediainfo", "ffprobe", "both", "boxes"]


@dataclass
class Facts:
    container: str  # judged by content: mp4, mov, or what it really is (webm, flv, mxf, ...)
    brand: str = ""  # ftyp major brand, e.g. isom, qt, 3gp5, M4V
    video_codec: str = ""  # ffprobe-style name: h264, hevc, prores, av1, ...
    width: int | None = None  # coded pixels of the video track
    height: int | None = None
    display_width: int | None = None  # as a player shows it: pixel aspect and rotation applied
    display_height: int | None = None
    rotation: int = 0  # clockwise degrees a player turns the picture
    pixel_aspect: str = "1:1"
    fps: float | None = None  # the nominal rate we judge (= fps_nominal)
    fps_exact: str | None = None  # the nominal rate as a rational, e.g. 30000/1001
    fps_nominal: float | None = None  # from the dominant sample duration
    fps_average: float | None = None  # frames / sum of sample durations
    fps_mode: str | None = None  # CFR or VFR
    duration: float | None = None  # seconds of the video track as presented (edit lists applied)
    container_duration: float | None = None  # seconds, the whole movie
    frame_count: int | None = None
    size_bytes: int = 0
    has_audio: bool = False
    faststart: bool | None = None  # moov before mdat
    fragmented: bool = False
    edit_list: bool = False
    video_tracks: int = 0  # real video tracks (cover art not counted)
    # The container's ID of the judged track (MP4/MOV tkhd track_ID, which ffmpeg takes as the
    # stream id: `-map 0:i:ID`); None when the reader judged the first video stream.
    video_track_id: int | None = None
    samples_complete: bool | None = None  # every sample the index names lies inside the file
    extension: str = ""  # the source name's extension, lower-case; only to warn when it lies

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Facts:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Disagreement:
    """A fact on which two backends read different values."""

    field: str
    mediainfo: Any
    ffprobe: Any


@dataclass
class BackendReading:
    """What one backend (MediaInfo or ffprobe) read itself, before the box reader's corrections."""

    backend: str
    container: str = ""  # our name for the format, "" when the backend did not recognise it
    video_codec: str = ""
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    fps: float | None = None
    duration: float | None = None
    container_duration: float | None = None
    frame_count: int | None = None
    has_audio: bool = False
    video_tracks: int = 0


def as_float(value: object) -> float | None:
    """`value` as a float, or None when a backend printed nothing usable (empty, "N/A", absent)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
