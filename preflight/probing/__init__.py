"""Probe: turn a local file into Facts, from our box reader plus MediaInfo and/or ffprobe.

The box reader decides timing, structure and truncation for MP4/MOV, and with the default `auto`
probe everything (the codec's name comes from the sample description's four-cc); the backends,
each bounded in a child process, name codecs and formats, and read what is not MP4/MOV at all.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import ProbeError, UsageError
from ..facts import BackendName, BackendReading, Disagreement, Facts, ReaderName
from . import boxes
from .limits import ProbeLimits
from .names import codec_from_fourcc, sniff_container

# auto: the box reader alone for MP4/MOV, MediaInfo for anything else; the others always run
# the named backend(s) beside the box reader.
BACKENDS: tuple[BackendName, ...] = ("auto", "mediainfo", "ffprobe", "both")
DEFAULT_BACKEND: BackendName = "auto"
BOX_READER: ReaderName = "boxes"  # what probe.backend says when the box reader alone read the file
# Backend failures that make the file an error even when the box reader read it: no backend at
# all, or a parse that overran its bounds (a file hostile to parsers; the API's may choke too).
_FATAL = frozenset({"backend_missing", "timeout", "resource_limit"})
# Tolerances under which two backends' readings count as the same.
_TOLERANCE = {"fps": 0.01, "duration": 0.0015, "container_duration": 0.0015}
# ffprobe names one demuxer for Matroska and WebM; MediaInfo tells them apart. Not a disagreement.
_FAMILY = {"webm": "matroska"}


@dataclass
class ProbeResult:
    facts: Facts
    readings: dict[str, BackendReading] = field(default_factory=dict)
    disagreements: list[Disagreement] = field(default_factory=list)
    backend: ReaderName | None = None  # what read the file: boxes, mediainfo, ffprobe or both


def answered_by(backend: BackendName, facts: Facts) -> ReaderName:
    """What read a file probed with `backend`, from its facts (for results from the cache too).

    Only facts from the box reader have `samples_complete` set; under `auto` that is exactly
    when MediaInfo was not run.
    """
    if backend != "auto":
        return backend
    return BOX_READER if facts.samples_complete is not None else "mediainfo"


ReadFn = Callable[[str], BackendReading]


def probe(
    path: str | os.PathLike[str],
    *,
    backend: BackendName = DEFAULT_BACKEND,
    limits: ProbeLimits | None = None,
) -> ProbeResult:
    """Probe one local file. Raises ProbeError (with a `kind`) when it cannot be read as media.

    `limits` bound each backend's parse (time and memory); the box reader needs none.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown probe backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    name = os.fspath(path)
    size = _stat_size(name)
    try:
        with open(name, "rb") as f:
            return probe_stream(f, size, name, backend=backend, limits=limits)
    except PermissionError:
        raise ProbeError(f"permission denied: {name}", kind="permission") from None
    except IsADirectoryError:
        raise ProbeError(f"{name} is a directory, not a video file", kind="not_a_file") from None


def probe_stream(
    f: boxes.Source,
    size: int,
    name: str,
    *,
    backend: BackendName = DEFAULT_BACKEND,
    readers: dict[str, ReadFn] | None = None,
    limits: ProbeLimits | None = None,
) -> ProbeResult:
    """Probe an open, seekable file of `size` bytes; `name` is the path or URL the backends read."""
    if size == 0:
        raise ProbeError("the file is empty (0 bytes)", kind="empty")
    head = f.read(256)
    layout = boxes.read_layout(f, size) if boxes.looks_like_isobmff(head) else None
    if layout is not None:
        _check_complete(layout)
    if backend == "auto":
        chosen = [] if layout is not None else ["mediainfo"]
    else:
        chosen = ["mediainfo", "ffprobe"] if backend == "both" else [backend]
    readers = readers or _local_readers(limits or ProbeLimits())
    readings: dict[str, BackendReading] = {}
    failures: list[ProbeError] = []
    for which in chosen:
        try:
            readings[which] = readers[which](name)
        except ProbeError as exc:
            if exc.kind in _FATAL:
                raise
            failures.append(exc)
    reading = next(iter(readings.values()), None)
    if layout is not None:
        facts = facts_from_layout(layout, reading)
    else:
        container = sniff_container(head) or (reading.container if reading else "")
        if not container:
            reason = failures[0] if failures else "no known container format"
            raise ProbeError(f"not a video file: {reason}", kind="not_media")
        facts = facts_from_reading(container, size, reading)
    facts.extension = Path(name.split("?")[0]).suffix.lower().lstrip(".")
    return ProbeResult(facts, readings, compare(readings), answered_by(backend, facts))


def _stat_size(name: str) -> int:
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise ProbeError(f"no such file: {name}", kind="missing") from None
    except PermissionError:
        raise ProbeError(f"permission denied: {name}", kind="permission") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ProbeError("the file name is too long", kind="missing") from None
        raise ProbeError(f"cannot read {name}: {exc.strerror}", kind="unreadable") from None
    if stat.S_ISDIR(info.st_mode):
        raise ProbeError(
            f"{name} is a folder with no video files to check (see --include, -r)",
            kind="not_a_file",
        )
    if not stat.S_ISREG(info.st_mode):
        raise ProbeError(f"{name} is not a regular file", kind="not_a_file")
    return info.st_size


def _local_readers(limits: ProbeLimits) -> dict[str, ReadFn]:
    from . import ffprobe, mediainfo

    return {
        "mediainfo": lambda name: mediainfo.read(name, limits=limits),
        "ffprobe": lambda name: ffprobe.read(name, limits=limits),
    }


def _check_complete(layout: boxes.Layout) -> None:
    """Raise when the index is contradictory or points at data the file does not hold."""
    for track in layout.tracks:
        if track.table_problem and track.handler == "vide":
            raise ProbeError(
                f"the video index contradicts itself: {track.table_problem}", kind="bad_index"
            )
    needed = max((t.data_end for t in layout.tracks), default=0)
    if needed > layout.size_bytes:
        raise ProbeError(
            f"moov present, but the media data stops at byte {layout.size_bytes} of {needed}: "
            "the file is truncated or still being written",
            kind="truncated",
        )


def pick_video_track(layout: boxes.Layout) -> boxes.Track | None:
    """The track a player would play: an enabled video track with samples, else any video."""
    videos = [t for t in layout.tracks if t.is_video]
    playable = [t for t in videos if t.enabled and t.total_samples]
    ranked = playable or [t for t in videos if t.total_samples] or videos
    return ranked[0] if ranked else None


def facts_from_layout(layout: boxes.Layout, reading: BackendReading | None) -> Facts:
    brand = layout.major_brand.strip()
    is_qt = brand == "qt" or not layout.has_ftyp
    facts = Facts(
        container="mov" if is_qt else "mp4",
        brand=brand,
        size_bytes=layout.size_bytes,
        faststart=layout.faststart,
        fragmented=layout.fragmented,
        has_audio=any(t.handler == "soun" and t.total_samples for t in layout.tracks),
        video_tracks=sum(1 for t in layout.tracks if t.is_video),
        samples_complete=True,
    )
    facts.container_duration = _container_duration(layout)
    track = pick_video_track(layout)
    if track is None:
        return facts
    facts.video_codec = (
        reading.video_codec if reading and reading.video_codec else codec_from_fourcc(track.codec)
    )
    facts.width, facts.height = track.width or None, track.height or None
    facts.rotation = track.rotation
    if track.par and track.par[0] != track.par[1]:
        ratio = Fraction(*track.par)
        facts.pixel_aspect = f"{ratio.numerator}:{ratio.denominator}"
    facts.display_width, facts.display_height = _display_size(track)
    facts.frame_count = track.total_samples
    _set_rates(facts, track)
    facts.duration = _presented_duration(track, layout.movie_timescale)
    # True when the edit list changes what is shown: an empty edit, or a trim of the media.
    media_s = track.total_ticks / track.timescale if track.timescale else None
    facts.edit_list = any(media_time == -1 for _, media_time, _ in track.edits) or (
        bool(track.edits)
        and media_s is not None
        and facts.duration is not None
        and abs(media_s - facts.duration) > 0.001
    )
    return facts


def _display_size(track: boxes.Track) -> tuple[int | None, int | None]:
    width = round(track.tkhd_width) or track.width
    height = round(track.tkhd_height) or track.height
    if not width or not height:
        return None, None
    if track.rotation in (90, 270):
        width, height = height, width
    return width, height


def _set_rates(facts: Facts, track: boxes.Track) -> None:
    if not track.timescale or not track.deltas:
        return
    total_ticks = track.total_ticks
    samples = track.total_samples
    deltas = track.deltas
    dominant, count = deltas.most_common(1)[0]
    if total_ticks and samples:
        facts.fps_average = round(samples * track.timescale / total_ticks, 6)
    # Nominal rate: the dominant frame duration when one clearly dominates (iPhone clips: 20-tick
    # frames at timescale 600 with a rare 21), else frames over the sum of sample durations.
    if dominant and count >= boxes.DOMINANT_SHARE * samples:
        nominal = Fraction(track.timescale, dominant)
    elif total_ticks:
        nominal = Fraction(samples * track.timescale, total_ticks)
    else:
        return
    facts.fps_exact = f"{nominal.numerator}/{nominal.denominator}"
    facts.fps_nominal = facts.fps = round(float(nominal), 6)
    # Rounding jitter of one tick around the dominant duration is still a constant rate.
    body = [d for d in deltas if d and deltas[d] and not (d == track.last_delta and deltas[d] == 1)]
    steady = all(abs(d - dominant) <= 1 for d in body)
    facts.fps_mode = "CFR" if steady else "VFR"


def _presented_duration(track: boxes.Track, movie_timescale: int) -> float | None:
    if not track.timescale:
        return None
    media_s = track.total_ticks / track.timescale
    if not track.edits or not movie_timescale:
        return round(media_s, 6)
    total = 0.0
    leading = True
    for duration, media_time, _rate in track.edits:
        if media_time == -1:
            if not leading:  # a gap inside the presentation is shown as time; a lead-in is not
                total += duration / movie_timescale
            continue
        leading = False
        if duration == 0:  # fragmented files: "all of the media" (media_time skips decoder delay)
            total += media_s
        else:
            total += duration / movie_timescale
    return round(total, 6)


def _container_duration(layout: boxes.Layout) -> float | None:
    if layout.fragmented or not layout.movie_duration or not layout.movie_timescale:
        # Fragment headers (mehd, mvhd) are often wrong or "unknown": measure the fragments.
        durations = [
            _presented_duration(t, layout.movie_timescale)
            for t in layout.tracks
            if t.handler in ("vide", "soun")
        ]
        known = [d for d in durations if d is not None]
        return max(known) if known else None
    return round(layout.movie_duration / layout.movie_timescale, 6)


def facts_from_reading(container: str, size: int, reading: BackendReading | None) -> Facts:
    """Facts for a file our box reader does not handle (not MP4/MOV): what the backend read."""
    facts = Facts(container=container, size_bytes=size)
    if reading is None:
        return facts
    facts.video_codec = reading.video_codec
    facts.width, facts.height = reading.width, reading.height
    facts.rotation = reading.rotation
    facts.fps = facts.fps_nominal = facts.fps_average = reading.fps
    # Matroska and FLV often carry no per-stream duration in ffprobe: the container's stands in.
    facts.duration = (
        reading.duration if reading.duration is not None else reading.container_duration
    )
    facts.container_duration = reading.container_duration
    facts.frame_count = reading.frame_count
    facts.has_audio = reading.has_audio
    facts.video_tracks = reading.video_tracks
    return facts


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
