"""A snapshot of a remote file for the backends: the bytes of its index, zeros for its media.

The parent fetches the snapshot through its own checked HTTP reader; MediaInfo (in a worker) and
ffprobe (on a sparse temp file) read only it, so neither ever touches the network or a redirect.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import ProbeError
from . import boxes
from .bmff import Source

# Top-level boxes whose payload the backends read: the index (the box reader caps moov and moof
# at 64 MiB). Any other box (mdat, free, uuid, ...) is sent as its header, its payload as zeros:
# a server cannot make us fetch a multi-gigabyte `uuid` for MediaInfo to skip.
INDEX_BOXES = frozenset({"ftyp", "styp", "moov", "moof", "sidx", "mfra"})


@dataclass
class Snapshot:
    """The bytes of a file a backend may see: `chunks` (offset, bytes), zeros elsewhere.

    Reads at or past `readable_end` see the end of the file (a budget for formats we do not steer).
    """

    size: int
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    readable_end: int | None = None

    @property
    def end(self) -> int:
        return self.size if self.readable_end is None else min(self.readable_end, self.size)


def take(f: Source, size: int, *, non_mp4_budget: int) -> Snapshot:
    """Read what the backends need from `f`: the index boxes and every other top-level box's
    header (MP4/MOV), or the first `non_mp4_budget` bytes of anything else (its headers name
    format and codec)."""
    f.seek(0)
    if not boxes.looks_like_isobmff(f.read(16)):
        end = min(size, non_mp4_budget)
        f.seek(0)
        return Snapshot(size, [(0, f.read(end))], readable_end=end)
    chunks = []
    for box in boxes.walk_top(f, size):
        keep = box.size if box.type in INDEX_BOXES else box.header
        f.seek(box.offset)
        chunks.append((box.offset, f.read(min(keep, size - box.offset))))
    return Snapshot(size, chunks)


@contextmanager
def sparse_file(snapshot: Snapshot, name: str) -> Iterator[str]:
    """The snapshot as a temporary sparse file (holes read as zeros, cost no disk); removed after.

    `name`'s extension is kept, so a tool that guesses by it guesses as it would on the original.
    """
    match = re.search(r"\.([A-Za-z0-9]{1,8})$", name.split("?")[0].split("#")[0])
    suffix = f".{match.group(1)}" if match else ""
    try:
        fd, path = tempfile.mkstemp(prefix="preflight-", suffix=suffix)
    except OSError as exc:
        raise _staging_error(exc) from None
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                for offset, data in snapshot.chunks:
                    out.seek(offset)
                    out.write(data)
                out.truncate(snapshot.end)
        except (OSError, OverflowError) as exc:  # a size the file system cannot hold
            raise _staging_error(exc) from None
        yield path
    finally:
        os.unlink(path)


def _staging_error(exc: BaseException) -> ProbeError:
    reason = getattr(exc, "strerror", None) or exc
    return ProbeError(f"cannot stage the file's index for ffprobe: {reason}", kind="unreadable")
