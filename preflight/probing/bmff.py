"""What every box parser shares: the Layout and Track they fill, child boxes, fixed fields, tables.

Kept apart so that boxes.py, sampletable.py and fragments.py share it without importing each other.
Every primitive here raises ProbeError(kind="bad_index") naming the box when its bytes run short,
so a parser never lets struct.error or IndexError out (see STYLE.md §13).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ProbeError

# The most samples one track may claim. A 10.5 s clip at 240 fps is 2,520 frames and a 24-hour
# recording at 240 fps is 20.7 million, so a count near 2^26 (67 million) is a corrupt or hostile
# index, not a video: the track's table_problem says so (bad_index for a video track).
MAX_SAMPLES = 1 << 26
# The most entries preflight reads from one table (stts, stsc, stco, elst, trun) or distinct sample
# durations one track may have. Those become Python objects, about 100 bytes and 0.5 us each, so
# this keeps a hostile 64 MiB index within about 200 MB and a second. Real indexes are far below:
# an hour at 60 fps, one sample a chunk and a different duration per frame is 216,000.
MAX_ENTRIES = 1 << 20

# array typecodes whose items are exactly 2, 4 and 8 bytes on this platform ('I' and 'L' vary).
_TYPECODE = {
    width: next(code for code in codes if array(code).itemsize == width)
    for width, codes in ((2, "H"), (4, "IL"), (8, "QL"))
}


class Source(Protocol):
    """What the reader needs of a file: a local file object, or a RangedFile over HTTP."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class TopBox:
    type: str
    offset: int
    size: int  # whole box, header included; for a box cut short: what its header claims
    header: int


@dataclass
class Track:
    track_id: int = 0
    handler: str = ""
    enabled: bool = True
    codec: str = ""  # sample entry fourcc, e.g. avc1, hvc1, apcn
    width: int = 0  # coded width from the visual sample entry
    height: int = 0
    tkhd_width: float = 0.0  # presentation size from tkhd (pixel aspect applied, no rotation)
    tkhd_height: float = 0.0
    rotation: int = 0  # clockwise degrees a player turns the picture
    par: tuple[int, int] | None = None  # pasp hSpacing:vSpacing
    timescale: int = 0
    deltas: Counter[int] = field(default_factory=Counter)  # sample duration -> count
    last_delta: int | None = None
    sample_count: int = 0
    edits: list[tuple[int, int, float]] = field(default_factory=list)  # (dur, media_time, rate)
    data_end: int = 0  # one past the last byte of sample data the sample table points at
    fragment_samples: int = 0  # samples found in moof boxes (their durations are in `deltas` too)
    default_sample_duration: int = 0  # trex
    table_problem: str = ""  # why the sample table contradicts itself, when it does

    @property
    def total_ticks(self) -> int:
        return sum(d * n for d, n in self.deltas.items())

    @property
    def total_samples(self) -> int:
        return self.sample_count + self.fragment_samples

    @property
    def is_video(self) -> bool:
        # A lone JPEG/PNG frame in a video track is cover art some muxers store as a track.
        still = self.total_samples <= 1 and self.codec in ("jpeg", "png", "mjpa", "mjpg")
        return self.handler == "vide" and not still


@dataclass
class Layout:
    """What the box walk found: the file's shape and every track's timing."""

    size_bytes: int
    top: list[TopBox]
    major_brand: str = ""
    movie_timescale: int = 0
    movie_duration: int | None = None
    tracks: list[Track] = field(default_factory=list)

    @property
    def has_ftyp(self) -> bool:
        return any(b.type == "ftyp" for b in self.top)

    @property
    def fragmented(self) -> bool:
        return any(b.type == "moof" for b in self.top)

    @property
    def faststart(self) -> bool:
        moov = next((b.offset for b in self.top if b.type == "moov"), None)
        mdat = next((b.offset for b in self.top if b.type == "mdat"), None)
        return moov is not None and (mdat is None or moov < mdat)


def children(buf: memoryview) -> list[tuple[str, memoryview]]:
    """The (type, body) of each box packed in `buf`, headers stripped.

    Not recursive: callers descend only along the fixed container chain (moov/trak/mdia/minf/stbl,
    moof/traf), so however deep a file nests boxes, the reader's depth stays that of the chain.
    """
    out: list[tuple[str, memoryview]] = []
    pos, end = 0, len(buf)
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break  # a malformed child ends the list; the boxes before it still count
        out.append((kind.decode("latin-1"), buf[pos + header : pos + size]))
        pos += size
    return out


def need(buf: memoryview, length: int, box: str) -> None:
    """Raise bad_index unless the body of `box` holds at least `length` bytes of fixed fields."""
    if len(buf) < length:
        raise ProbeError(
            f"the {box} box is {len(buf)} byte{'' if len(buf) == 1 else 's'}, shorter than its "
            f"fixed fields ({length} bytes)",
            kind="bad_index",
        )


def fields(fmt: str, buf: memoryview, pos: int, box: str) -> tuple[int, ...]:
    """Unpack the big-endian fixed fields `fmt` at `pos` of the body of `box`."""
    need(buf, pos + struct.calcsize(fmt), box)
    values: tuple[int, ...] = struct.unpack_from(fmt, buf, pos)
    return values


def u32(buf: memoryview, pos: int, box: str) -> int:
    return fields(">I", buf, pos, box)[0]


def u64(buf: memoryview, pos: int, box: str) -> int:
    return fields(">Q", buf, pos, box)[0]


def entries(count: int, box: str) -> int:
    """`count` entries of `box` its bytes hold, unless there are more than preflight reads."""
    if count > MAX_ENTRIES:
        raise ProbeError(
            f"the {box} box holds {count} entries, more than the {MAX_ENTRIES} preflight reads: "
            "not the index of a video clip",
            kind="bad_index",
        )
    return count


def table(buf: memoryview, pos: int, count: int, width: int) -> array[int]:
    """Up to `count` big-endian unsigned integers of `width` bytes from `pos`: only as many as the
    bytes hold, so a count of 2^32-1 in a short box costs its bytes, not four billion entries.

    An array holds each entry in `width` bytes, where a list of ints would take about 40.
    """
    count = max(0, min(count, (len(buf) - pos) // width))
    values = array(_TYPECODE[width])
    values.frombytes(buf[pos : pos + count * width])
    if sys.byteorder == "little":
        values.byteswap()
    return values
