"""Where MediaInfo and ffprobe read one file differently (`--probe both`), within tolerances."""

from __future__ import annotations

from ..facts import BackendReading, Disagreement

# Tolerances under which two backends' readings count as the same.
_TOLERANCE = {"fps": 0.01, "duration": 0.0015, "container_duration": 0.0015}
# ffprobe names one demuxer for Matroska and WebM; MediaInfo tells them apart. Not a disagreement.
_FAMILY = {"webm": "matroska"}


def compare(readings: dict[str, BackendReading]) -> list[Disagreement]:
    """Every field on which MediaInfo and ffprobe read different values."""
    if len(readings) < 2:
        return []
    mi, ff = readings["mediainfo"], readings["ffprobe"]
    out: list[Disagreement] = []
    for name in (
        "container",
        "video_codec",
        "width",
        "height",
        "rotation",
        "fps",
        "duration",
        "container_duration",
        "frame_count",
        "has_audio",
        "video_tracks",
    ):
        a, b = getattr(mi, name), getattr(ff, name)
        if a == b or (name == "container" and _FAMILY.get(a, a) == _FAMILY.get(b, b)):
            continue
        tolerance = _TOLERANCE.get(name)
        if tolerance is not None and a is not None and b is not None and abs(a - b) <= tolerance:
            continue
        out.append(Disagreement(name, a, b))
    return out
