"""The sample table (`stbl`) of one track: codec, picture size, sample durations, sizes and chunks.

Chunk extents give `data_end`, which shows truncation; stsc is checked against stco and stsz.
"""

from __future__ import annotations

import itertools
import struct
from typing import TYPE_CHECKING

from .bmff import children, u32

if TYPE_CHECKING:
    from .boxes import Track


def parse_stbl(track: Track, stbl: memoryview) -> None:
    """Fill `track` from its `stbl`: stsd, stts, stsz/stz2, stsc and stco/co64."""
    sizes: list[int] = []
    uniform_size = 0
    chunk_offsets: list[int] = []
    stsc: list[tuple[int, int]] = []
    for kind, body in children(stbl):
        if kind == "stsd":
            _parse_stsd(track, body)
        elif kind == "stts":
            count = u32(body, 4)
            count = min(count, (len(body) - 8) // 8)
            values = struct.unpack_from(f">{2 * count}I", body, 8)
            for i in range(0, 2 * count, 2):
                track.deltas[values[i + 1]] += values[i]
            if count:
                track.last_delta = values[2 * count - 1]
        elif kind == "stsz":
            uniform_size, count = struct.unpack_from(">II", body, 4)
            track.sample_count = count
            if uniform_size == 0:
                count = min(count, (len(body) - 12) // 4)
                sizes = list(struct.unpack_from(f">{count}I", body, 12))
        elif kind == "stz2":
            field_size = body[7]
            count = u32(body, 8)
            track.sample_count = count
            sizes = _unpack_stz2(body[12:], field_size, count)
        elif kind == "stsc":
            count = min(u32(body, 4), (len(body) - 8) // 12)
            values = struct.unpack_from(f">{3 * count}I", body, 8)
            stsc = [(values[i], values[i + 1]) for i in range(0, 3 * count, 3)]
        elif kind == "stco":
            count = min(u32(body, 4), (len(body) - 8) // 4)
            chunk_offsets = list(struct.unpack_from(f">{count}I", body, 8))
        elif kind == "co64":
            count = min(u32(body, 4), (len(body) - 8) // 8)
            chunk_offsets = list(struct.unpack_from(f">{count}Q", body, 8))
    track.table_problem = _stsc_problem(stsc, len(chunk_offsets), track.sample_count)
    track.data_end = _data_end(chunk_offsets, stsc, sizes, uniform_size, track.sample_count)


def _stsc_problem(stsc: list[tuple[int, int]], chunks: int, samples: int) -> str:
    if not samples:
        return ""
    if not stsc or not chunks:
        return "samples are listed but no chunk holds them (empty stsc or stco)"
    firsts = [first for first, _ in stsc]
    if firsts[0] != 1 or any(b <= a for a, b in itertools.pairwise(firsts)):
        return f"the sample-to-chunk table (stsc) starts at chunk {firsts[0]} or goes backwards"
    covered = 0
    for i, (first, per_chunk) in enumerate(stsc):
        last = stsc[i + 1][0] - 1 if i + 1 < len(stsc) else chunks
        covered += max(0, min(last, chunks) - first + 1) * per_chunk
    if covered < samples:
        return f"the chunks (stsc/stco) hold {covered} samples but stsz lists {samples}"
    return ""


def _unpack_stz2(body: memoryview, field_size: int, count: int) -> list[int]:
    if field_size == 16:
        return list(struct.unpack_from(f">{min(count, len(body) // 2)}H", body, 0))
    if field_size == 8:
        return list(body[:count])
    nibbles: list[int] = []
    for byte in body[: (count + 1) // 2]:
        nibbles += (byte >> 4, byte & 15)
    return nibbles[:count]


def _data_end(
    offsets: list[int], stsc: list[tuple[int, int]], sizes: list[int], uniform: int, count: int
) -> int:
    """One past the last byte any chunk's samples occupy, from stco/co64, stsc and stsz."""
    if not offsets or not stsc:
        return 0
    end = 0
    sample = 0
    run = 0
    for chunk_index, offset in enumerate(offsets, start=1):
        while run + 1 < len(stsc) and stsc[run + 1][0] <= chunk_index:
            run += 1
        per_chunk = stsc[run][1]
        length = uniform * per_chunk if uniform else sum(sizes[sample : sample + per_chunk])
        sample += per_chunk
        if sample > count + per_chunk:
            break  # the sample table is shorter than the chunk table: stop where samples end
        end = max(end, offset + length)
    return end


def _parse_stsd(track: Track, body: memoryview) -> None:
    entries = children(body[8:])
    if not entries:
        return
    kind, entry = entries[0]
    track.codec = kind.strip()
    if track.handler != "vide" or len(entry) < 78:
        return
    track.width, track.height = struct.unpack_from(">HH", entry, 24)
    for sub, sbody in children(entry[78:]):
        if sub == "pasp" and len(sbody) >= 8:
            h_spacing, v_spacing = struct.unpack_from(">II", sbody, 0)
            if h_spacing and v_spacing:
                track.par = (h_spacing, v_spacing)
