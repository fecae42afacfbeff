"""Movie fragments: the `traf` boxes of one `moof`, their `tfhd` defaults and `trun` samples.

Fragment samples add to a track's durations and sample count, and their data extends `data_end`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .bmff import children, u32, u64

if TYPE_CHECKING:
    from .boxes import Track


def parse_moof(by_id: dict[int, Track], moof: memoryview, moof_offset: int) -> None:
    """Add the samples of every `traf` in `moof` to the track its `tfhd` names."""
    for kind, traf in children(moof):
        if kind != "traf":
            continue
        track: Track | None = None
        default_duration = 0
        default_size = 0
        base = moof_offset  # default-base-is-moof, and the usual case in practice
        for sub, body in children(traf):
            if sub == "tfhd":
                flags = int.from_bytes(body[1:4], "big")
                track = by_id.get(u32(body, 4))
                if track is None:
                    break
                default_duration = track.default_sample_duration
                pos = 8
                if flags & 0x1:
                    base = u64(body, pos)
                    pos += 8
                if flags & 0x2:
                    pos += 4
                if flags & 0x8:
                    default_duration = u32(body, pos)
                    pos += 4
                if flags & 0x10:
                    default_size = u32(body, pos)
            elif sub == "trun" and track is not None:
                _parse_trun(track, body, base, default_duration, default_size)


def _parse_trun(
    track: Track, body: memoryview, base: int, default_duration: int, default_size: int
) -> None:
    flags = int.from_bytes(body[1:4], "big")
    count = u32(body, 4)
    pos = 8
    data_offset = 0
    if flags & 0x1:
        data_offset = struct.unpack_from(">i", body, pos)[0]
        pos += 4
    if flags & 0x4:
        pos += 4
    per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    count = min(count, (len(body) - pos) // per_sample) if per_sample else count
    data = 0
    for _ in range(count):
        duration, size = default_duration, default_size
        if flags & 0x100:
            duration = u32(body, pos)
            pos += 4
        if flags & 0x200:
            size = u32(body, pos)
            pos += 4
        pos += 4 * ((flags & 0x400) > 0) + 4 * ((flags & 0x800) > 0)
        track.deltas[duration] += 1
        data += size
    track.fragment_samples += count
    if flags & 0x1:
        track.data_end = max(track.data_end, base + data_offset + data)
