"""Probing a local file or an open stream: the box reader first, then the backends the probe
mode asks for, each bounded in a child process; truncation and contradictions end it early.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ProbeError, UsageError
from ..facts import BackendName, BackendReading, Disagreement, Facts, ReaderName
from . import boxes
from .bmff import Layout, Source
from .compare import compare
from .limits import ProbeLimits
from .names import BACKENDS, DEFAULT_BACKEND, answered_by, sniff_container
from .timing import facts_from_layout

# Backend failures that make the file an error even when the box reader read it: no backend at
# all, or a parse that overran its bounds (a file hostile to parsers; the API's may choke too).
_FATAL = frozenset({"backend_missing", "timeout", "resource_limit"})


@dataclass
class ProbeResult:
    facts: Facts
    disagreements: list[Disagreement] = field(default_factory=list)
    backend: ReaderName | None = None  # what read the file: boxes, mediainfo, ffprobe or both


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
    f: Source,
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
    # The box reader alone loads no backend module (ffprobe's needs subprocess).
    readers = readers or (_local_readers(limits or ProbeLimits()) if chosen else {})
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
    facts.extension = _extension(name)
    return ProbeResult(facts, compare(readings), answered_by(backend, facts))


def _extension(name: str) -> str:
    """The last name's suffix, as pathlib's PurePosixPath(name).suffix has it (lowercased, no
    dot; a URL's query dropped); spelled out so that a local check does not load pathlib."""
    parts = [part for part in name.split("?")[0].split("/") if part not in ("", ".")]
    last = parts[-1] if parts else ""
    dot = last.rfind(".")
    return last[dot + 1 :].lower() if 0 < dot < len(last) - 1 else ""


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
    except ValueError:
        # os.stat refuses a name holding a NUL byte ("embedded null byte"): no file can be
        # named so, which is what `missing` says.
        raise ProbeError("no such file: the name holds a NUL byte", kind="missing") from None
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


def _check_complete(layout: Layout) -> None:
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
