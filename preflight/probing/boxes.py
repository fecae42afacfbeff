"""A reader of ISO-BMFF / QuickTime boxes: the top-level walk, `ftyp`, and `moov` down to `mdia`.

It supplies what MediaInfo and ffprobe do not expose reliably: sample durations, edit lists, chunk
extents (truncation), the `ftyp` brand, and fragment durations. The sample table is parsed in
sampletable.py, `moof` fragments in fragments.py; the Layout and Track they fill live in bmff.py.
"""

from __future__ import annotations

import math
import struct

from ..errors import ProbeError
from .bmff import Layout, Source, TopBox, Track, children, entries, fields, need, u32
from .fragments import parse_moof
from .sampletable import parse_stbl

# Top-level box types that mark a file as ISO-BMFF or QuickTime when they come first.
_TOP_LEVEL_TYPES = {
    b"ftyp",
    b"moov",
    b"mdat",
    b"free",
    b"skip",
    b"wide",
    b"pnot",
    b"styp",
    b"sidx",
    b"moof",
    b"uuid",
    b"pdin",
    b"meta",
    b"junk",
    b"PICT",
    b"prfl",
}
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"dinf", b"udta"}
_UNKNOWN_32 = 0xFFFFFFFF  # mdhd/tkhd/mvhd duration sentinel for "unknown"
_UNKNOWN_64 = 0xFFFFFFFFFFFFFFFF
_MAX_HEADER_BOX = 64 << 20  # a moov or moof larger than this is not a file we can trust
# A fragmented hour in half-second fragments is ~15,000 top-level boxes (moof + mdat each); a file
# with more is a pile of tiny boxes, and walking it would cost a read per 8 bytes.
_MAX_TOP_BOXES = 1 << 17
_MAX_FTYP = 1024  # only the major brand is read: a huge ftyp costs no more than a small one


def looks_like_isobmff(head: bytes) -> bool:
    """True when the first bytes hold a plausible top-level box of ISO-BMFF or QuickTime."""
    if len(head) < 8:
        return False
    size = struct.unpack(">I", head[:4])[0]
    return head[4:8] in _TOP_LEVEL_TYPES and (size in (0, 1) or size >= 8)


def walk_top(f: Source, size_bytes: int) -> list[TopBox]:
    """List the top-level boxes by reading only their headers."""
    boxes: list[TopBox] = []
    offset = 0
    while offset + 8 <= size_bytes:
        if len(boxes) >= _MAX_TOP_BOXES:
            raise ProbeError(
                f"more than {_MAX_TOP_BOXES} top-level boxes: not a video file whose index "
                "preflight can read",
                kind="not_media",
            )
        f.seek(offset)
        head = f.read(16)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                break
            size = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif size == 0:  # "to the end of the file"
            size = size_bytes - offset
        name = kind.decode("latin-1")
        if size < header or not name.isprintable():
            if not boxes:
                raise ProbeError(
                    "not an MP4/MOV file: the first box header is invalid", kind="not_media"
                )
            break  # trailing garbage after valid boxes: ignore, as players do
        boxes.append(TopBox(name, offset, size, header))
        offset += size
    return boxes


def read_layout(f: Source, size_bytes: int) -> Layout:
    """Walk the file and parse `ftyp`, `moov` and every `moof` into a Layout.

    Raises ProbeError for any bytes that are not a readable MP4/MOV index (or the source's own
    NetworkError); never struct.error, IndexError or the like, whatever the bytes.
    """
    try:
        return _read_layout(f, size_bytes)
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        # The parsers check their boxes' lengths; this is the reader's edge, so that a shape they
        # missed is still one clear error for this file, not a traceback or kind "internal".
        raise ProbeError(
            f"the index is malformed ({type(exc).__name__}: {exc})", kind="bad_index"
        ) from None


def _read_layout(f: Source, size_bytes: int) -> Layout:
    layout = Layout(size_bytes=size_bytes, top=walk_top(f, size_bytes))
    for box in layout.top:
        if box.type == "ftyp":
            body = _read_body(f, box, size_bytes, limit=_MAX_FTYP)
            _parse_ftyp(layout, body)
    moov = next((b for b in layout.top if b.type == "moov"), None)
    if moov is None:
        kinds = ", ".join(b.type for b in layout.top) or "nothing"
        raise ProbeError(
            f"no moov box (found {kinds}): the recording was never finalised or the upload is "
            "incomplete, so there is no index of the video",
            kind="no_moov",
        )
    if moov.offset + moov.size > size_bytes:
        raise ProbeError(
            f"the moov box runs past the end of the file (byte {size_bytes} of "
            f"{moov.offset + moov.size}): the file is truncated or still being written",
            kind="truncated",
        )
    _parse_moov(layout, _read_body(f, moov, size_bytes))
    by_id = {t.track_id: t for t in layout.tracks}
    for box in layout.top:
        if box.type == "moof":
            if box.offset + box.size > size_bytes:
                break  # a fragment cut short: what came before still counts
            parse_moof(by_id, _read_body(f, box, size_bytes), box.offset)
    return layout


def _read_body(f: Source, box: TopBox, size_bytes: int, *, limit: int | None = None) -> memoryview:
    # max(0, ..): a negative length would make read() return the whole rest of the file.
    length = max(0, min(box.size, size_bytes - box.offset) - box.header)
    if limit is not None:
        length = min(length, limit)
    if length > _MAX_HEADER_BOX:
        raise ProbeError(
            f"the {box.type} box is {length} bytes, too large to be an index", kind="not_media"
        )
    f.seek(box.offset + box.header)
    return memoryview(f.read(length))


def _parse_ftyp(layout: Layout, body: memoryview) -> None:
    if len(body) >= 8:
        layout.major_brand = bytes(body[:4]).decode("latin-1")


def _parse_moov(layout: Layout, moov: memoryview) -> None:
    moov_boxes = children(moov)
    for kind, body in moov_boxes:
        if kind == "mvhd":
            layout.movie_timescale, layout.movie_duration = _timescale_duration(body, "mvhd")
        elif kind == "trak":
            layout.tracks.append(_parse_trak(body))
    # mvex after the traks: its trex defaults name tracks by id, and muxers place it either side.
    for kind, body in moov_boxes:
        if kind != "mvex":
            continue
        for sub, sbody in children(body):
            if sub == "mehd":
                # Its duration is often wrong (corpus: 3900 s over 8 s of fragments), so the
                # fragments are measured instead; a mehd too short for its field is still malformed.
                need(sbody, 4, "mehd")
                fields(">Q" if sbody[0] == 1 else ">I", sbody, 4, "mehd")
            elif sub == "trex":
                need(sbody, 24, "trex")
                track_id, _, default_duration = struct.unpack_from(">III", sbody, 4)
                for track in layout.tracks:
                    if track.track_id == track_id:
                        track.default_sample_duration = default_duration


def _timescale_duration(body: memoryview, box: str) -> tuple[int, int | None]:
    need(body, 4, box)
    if body[0] == 1:
        timescale, duration = fields(">IQ", body, 20, box)
        return timescale, None if duration == _UNKNOWN_64 else duration
    timescale, duration = fields(">II", body, 12, box)
    return timescale, None if duration == _UNKNOWN_32 else duration


def _parse_trak(trak: memoryview) -> Track:
    track = Track()
    for kind, body in children(trak):
        if kind == "tkhd":
            _parse_tkhd(track, body)
        elif kind == "edts":
            for sub, sbody in children(body):
                if sub == "elst":
                    track.edits = _parse_elst(sbody)
        elif kind == "mdia":
            _parse_mdia(track, body)
    return track


def _parse_tkhd(track: Track, body: memoryview) -> None:
    need(body, 4, "tkhd")
    version = body[0]
    track.enabled = bool(body[3] & 1)
    if version == 1:
        track.track_id = u32(body, 20, "tkhd")
        matrix_at = 4 + 8 + 8 + 4 + 4 + 8 + 8 + 8
    else:
        track.track_id = u32(body, 12, "tkhd")
        matrix_at = 4 + 4 + 4 + 4 + 4 + 4 + 8 + 8
    # The matrix and presentation size end the fixed fields: every muxer writes them all.
    need(body, matrix_at + 36 + 8, "tkhd")
    a, b, _u, c, d = struct.unpack_from(">iiiii", body, matrix_at)
    track.rotation = _rotation_from_matrix(a / 65536, b / 65536, c / 65536, d / 65536)
    w, h = struct.unpack_from(">II", body, matrix_at + 36)
    track.tkhd_width, track.tkhd_height = w / 65536, h / 65536


def _rotation_from_matrix(a: float, b: float, c: float, d: float) -> int:
    # The matrix maps (x, y) -> (a*x + c*y, b*x + d*y); with y pointing down, a picture turned
    # 90 degrees clockwise has a=0, b=1, c=-1, d=0.
    if abs(a) < 1e-6 and abs(b) < 1e-6:
        return 0
    degrees = math.degrees(math.atan2(b, a))
    return round(degrees / 90) * 90 % 360


def _parse_elst(body: memoryview) -> list[tuple[int, int, float]]:
    need(body, 4, "elst")
    version = body[0]
    count = u32(body, 4, "elst")
    edits: list[tuple[int, int, float]] = []
    pos = 8
    # Bounded by the entries the bytes hold (the loop stops at the end of the body), not by count.
    for _ in range(entries(min(count, (len(body) - pos) // 12), "elst")):
        if version == 1:
            if pos + 20 > len(body):
                break
            duration, media_time = struct.unpack_from(">Qq", body, pos)
            rate_int, rate_frac = struct.unpack_from(">hH", body, pos + 16)
            pos += 20
        else:
            if pos + 12 > len(body):
                break
            duration, media_time = struct.unpack_from(">Ii", body, pos)
            rate_int, rate_frac = struct.unpack_from(">hH", body, pos + 8)
            pos += 12
        edits.append((duration, media_time, rate_int + rate_frac / 65536))
    return edits


def _parse_mdia(track: Track, mdia: memoryview) -> None:
    for kind, body in children(mdia):
        if kind == "mdhd":
            track.timescale = _timescale_duration(body, "mdhd")[0]
        elif kind == "hdlr":
            need(body, 12, "hdlr")
            track.handler = bytes(body[8:12]).decode("latin-1")
        elif kind == "minf":
            for sub, sbody in children(body):
                if sub == "stbl":
                    parse_stbl(track, sbody)
