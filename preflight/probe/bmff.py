"""The low-level ISO-BMFF reading every box parser shares: child boxes and big-endian integers.

Kept apart so that boxes.py, sampletable.py and fragments.py share it without importing each other.
"""

from __future__ import annotations

import struct


def children(buf: memoryview) -> list[tuple[str, memoryview]]:
    """The (type, body) of each box packed in `buf`, headers stripped."""
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


def u32(buf: memoryview, pos: int) -> int:
    value: int = struct.unpack_from(">I", buf, pos)[0]
    return value


def u64(buf: memoryview, pos: int) -> int:
    value: int = struct.unpack_from(">Q", buf, pos)[0]
    return value
