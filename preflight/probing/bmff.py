"""The low-level ISO-BMFF reading every box parser shares: child boxes, fixed fields and tables.

Kept apart so that boxes.py, sampletable.py and fragments.py share it without importing each other.
Every primitive here raises ProbeError(kind="bad_index") naming the box when its bytes run short,
so a parser never lets struct.error or IndexError out (see STYLE.md §13).
"""

from __future__ import annotations

import struct
import sys
from array import array

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
