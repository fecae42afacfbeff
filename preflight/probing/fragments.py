"""Movie fragments: the `traf` boxes of one `moof`, their `tfhd` defaults and `trun` samples.

Fragment samples add to a track's durations and sample count, and their data extends `data_end`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ProbeError
from .bmff import MAX_ENTRIES, MAX_SAMPLES, children, entries, fields, need, table, u32, u64

if TYPE_CHECKING:
    from .bmff import Track

# trun flags: which optional fields are present.
_DATA_OFFSET, _FIRST_FLAGS = 0x1, 0x4
_DURATION, _SIZE, _FLAGS, _CTS = 0x100, 0x200, 0x400, 0x800


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
                need(body, 8, "tfhd")
                flags = int.from_bytes(body[1:4], "big")
                track = by_id.get(u32(body, 4, "tfhd"))
                if track is None:
                    break
                default_duration = track.default_sample_duration
                pos = 8
                if flags & 0x1:
                    base = u64(body, pos, "tfhd")
                    pos += 8
                if flags & 0x2:
                    pos += 4
                if flags & 0x8:
                    default_duration = u32(body, pos, "tfhd")
                    pos += 4
                if flags & 0x10:
                    default_size = u32(body, pos, "tfhd")
            elif sub == "trun" and track is not None:
                _parse_trun(track, body, base, default_duration, default_size)


def _parse_trun(
    track: Track, body: memoryview, base: int, default_duration: int, default_size: int
) -> None:
    need(body, 8, "trun")
    flags = int.from_bytes(body[1:4], "big")
    count = u32(body, 4, "trun")
    pos = 8
    data_offset = 0
    if flags & _DATA_OFFSET:
        data_offset = fields(">i", body, pos, "trun")[0]
        pos += 4
    if flags & _FIRST_FLAGS:
        pos += 4
    present = [bit for bit in (_DURATION, _SIZE, _FLAGS, _CTS) if flags & bit]
    if present:
        # Per-sample fields: only the samples the box's bytes hold count, whatever `count` says.
        width = len(present)
        values = table(body, pos, width * min(count, max(0, len(body) - pos) // (4 * width)), 4)
        count = entries(len(values) // width, "trun")
        if flags & _DURATION:
            track.deltas.update(values[present.index(_DURATION) :: width])  # counted in C
            if len(track.deltas) > MAX_ENTRIES:
                raise ProbeError(
                    f"the fragments give track {track.track_id} more than {MAX_ENTRIES} "
                    "different sample durations: not the index of a video clip",
                    kind="bad_index",
                )
        else:
            track.deltas[default_duration] += count
        data = sum(values[present.index(_SIZE) :: width]) if flags & _SIZE else default_size * count
    else:
        # Every sample takes the defaults: add them in one step rather than one per sample.
        track.deltas[default_duration] += count
        data = default_size * count
    if count:
        track.fragment_samples += count
    if track.total_samples > MAX_SAMPLES and not track.table_problem:
        track.table_problem = (
            f"the fragments (trun) list {track.total_samples} samples, more than any video has"
        )
    if flags & _DATA_OFFSET:
        track.data_end = max(track.data_end, base + data_offset + data)
