"""The sample table (`stbl`) of one track: codec, picture size, sample durations, sizes and chunks.

Chunk extents give `data_end`, which shows truncation; stsc is checked against stco and stsz.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ProbeError
from .bmff import MAX_SAMPLES, children, entries, fields, need, table, u32

if TYPE_CHECKING:
    from .bmff import Track


def parse_stbl(track: Track, stbl: memoryview) -> None:
    """Fill `track` from its `stbl`: stsd, stts, stsz/stz2, stsc and stco/co64.

    Every table is read only as far as its box's bytes go, whatever count it claims; a claim the
    other tables contradict becomes `track.table_problem`.
    """
    sizes: Sequence[int] = ()
    uniform_size = 0
    chunk_offsets: Sequence[int] = ()
    firsts: Sequence[int] = ()  # stsc: first chunk of each run ...
    per_chunk: Sequence[int] = ()  # ... and the samples each chunk of the run holds
    timed = 0  # samples the durations (stts) cover
    for kind, body in children(stbl):
        if kind == "stsd":
            _parse_stsd(track, body)
        elif kind == "stts":
            count = entries(min(u32(body, 4, "stts"), (len(body) - 8) // 8), "stts")
            values = table(body, 8, 2 * count, 4)
            counts, durations = values[0::2], values[1::2]
            for n, duration in zip(counts, durations, strict=True):
                track.deltas[duration] += n
            timed = sum(counts)
            if count:
                track.last_delta = durations[-1]
        elif kind == "stsz":
            uniform_size, count = fields(">II", body, 4, "stsz")
            track.sample_count = count
            if uniform_size == 0:
                sizes = table(body, 12, count, 4)
        elif kind == "stz2":
            need(body, 12, "stz2")
            count = u32(body, 8, "stz2")
            track.sample_count = count
            sizes = _unpack_stz2(body[12:], body[7], count)
        elif kind == "stsc":
            count = entries(min(u32(body, 4, "stsc"), (len(body) - 8) // 12), "stsc")
            values = table(body, 8, 3 * count, 4)
            firsts, per_chunk = values[0::3], values[1::3]
        elif kind == "stco":
            chunk_offsets = table(body, 8, u32(body, 4, "stco"), 4)
            entries(len(chunk_offsets), "stco")
        elif kind == "co64":
            chunk_offsets = table(body, 8, u32(body, 4, "co64"), 8)
            entries(len(chunk_offsets), "co64")
    track.table_problem = _count_problem(track.sample_count, timed) or _stsc_problem(
        firsts, per_chunk, len(chunk_offsets), track.sample_count
    )
    track.data_end = _data_end(
        chunk_offsets, firsts, per_chunk, sizes, uniform_size, track.sample_count
    )


def _count_problem(samples: int, timed: int) -> str:
    if samples > MAX_SAMPLES:
        return f"the sample sizes (stsz) list {samples} samples, more than any video has"
    if timed != samples:
        return f"the sample sizes (stsz) list {samples} samples but the durations (stts) {timed}"
    return ""


def _stsc_problem(
    firsts: Sequence[int], per_chunk: Sequence[int], chunks: int, samples: int
) -> str:
    if not samples:
        return ""
    if not firsts or not chunks:
        return "samples are listed but no chunk holds them (empty stsc or stco)"
    if firsts[0] != 1 or any(b <= a for a, b in itertools.pairwise(firsts)):
        return f"the sample-to-chunk table (stsc) starts at chunk {firsts[0]} or goes backwards"
    covered = 0
    for i, (first, held) in enumerate(zip(firsts, per_chunk, strict=True)):
        last = firsts[i + 1] - 1 if i + 1 < len(firsts) else chunks
        covered += max(0, min(last, chunks) - first + 1) * held
    if covered < samples:
        return f"the chunks (stsc/stco) hold {covered} samples but stsz lists {samples}"
    return ""


def _unpack_stz2(body: memoryview, field_size: int, count: int) -> Sequence[int]:
    if field_size == 16:
        return table(body, 0, count, 2)
    if field_size == 8:
        return bytes(body[:count])
    if field_size != 4:
        raise ProbeError(
            f"the stz2 box has {field_size}-bit sizes (4, 8 or 16 allowed)", kind="bad_index"
        )
    # Two sizes a byte, high nibble first: split with translate, interleave by slice assignment.
    packed = bytes(body[: (count + 1) // 2])
    nibbles = bytearray(2 * len(packed))
    nibbles[0::2] = packed.translate(_HIGH_NIBBLE)
    nibbles[1::2] = packed.translate(_LOW_NIBBLE)
    return bytes(nibbles[:count])


_HIGH_NIBBLE = bytes(b >> 4 for b in range(256))
_LOW_NIBBLE = bytes(b & 15 for b in range(256))


def _data_end(
    offsets: Sequence[int],
    firsts: Sequence[int],
    per_chunk: Sequence[int],
    sizes: Sequence[int],
    uniform: int,
    count: int,
) -> int:
    """One past the last byte any chunk's samples occupy, from stco/co64, stsc and stsz.

    One pass over the chunks, which the stco/co64 bytes bound; each sample size is summed once.
    """
    if not offsets or not firsts:
        return 0
    end = 0
    sample = 0
    run = 0
    for chunk_index, offset in enumerate(offsets, start=1):
        while run + 1 < len(firsts) and firsts[run + 1] <= chunk_index:
            run += 1
        held = per_chunk[run]
        length = uniform * held if uniform else sum(sizes[sample : sample + held])
        sample += held
        if sample > count + held:
            break  # the sample table is shorter than the chunk table: stop where samples end
        end = max(end, offset + length)
    return end


def _parse_stsd(track: Track, body: memoryview) -> None:
    need(body, 8, "stsd")
    entries = children(body[8:])
    if not entries:
        return
    kind, entry = entries[0]
    track.codec = kind.strip()
    if track.handler != "vide":
        return
    # A visual sample entry's fixed fields run to byte 78; its picture size is at 24.
    need(entry, 78, kind)
    track.width, track.height = fields(">HH", entry, 24, kind)
    for sub, sbody in children(entry[78:]):
        if sub == "pasp":
            h_spacing, v_spacing = fields(">II", sbody, 0, "pasp")
            if h_spacing and v_spacing:
                track.par = (h_spacing, v_spacing)
