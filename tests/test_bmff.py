"""The box reader on malformed bytes: each shape a byte literal, as mutagen pins its MP4 reader.

Whatever the bytes, `read_layout` returns or raises ProbeError with a documented kind, and
`check_one` answers with an `error` Result; property tests (hypothesis) hold it to that for any
bytes and for mutated fixtures, within a deadline and an address-space limit.
"""

from __future__ import annotations

import io
import json
import resource
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight import ProbeError, check_one
from preflight.errors import ERROR_KINDS
from preflight.probing import boxes
from preflight.probing.bmff import MAX_ENTRIES

from .conftest import FIXTURES, run_cli


def box(kind: str, body: bytes = b"") -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind.encode("latin-1") + body


def full(flags: int = 0, version: int = 0) -> bytes:
    """The version and flags that open a "full box"."""
    return bytes([version]) + flags.to_bytes(3, "big")


_MATRIX = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
# The valid body of each box of a small video movie with one fragment; `movie()` swaps one out.
BODIES = {
    "ftyp": b"isom\0\0\x02\0isomiso2",
    "mvhd": full() + struct.pack(">IIII", 0, 0, 1000, 3000) + bytes(80),
    "tkhd": full(1)
    + struct.pack(">IIIII", 0, 0, 1, 0, 3000)
    + bytes(16)
    + _MATRIX
    + struct.pack(">II", 1280 << 16, 720 << 16),
    "elst": full() + struct.pack(">IIihH", 1, 3000, 0, 1, 0),
    "mdhd": full() + struct.pack(">IIII", 0, 0, 30, 90) + bytes(4),
    "hdlr": full() + bytes(4) + b"vide" + bytes(12) + b"\0",
    "pasp": struct.pack(">II", 1, 1),
    "stts": full() + struct.pack(">III", 1, 90, 1),
    "stsz": full() + struct.pack(">II", 100, 90),
    "stsc": full() + struct.pack(">IIII", 1, 1, 90, 1),
    "stco": full() + struct.pack(">II", 1, 0),
    "mehd": full() + struct.pack(">I", 92),
    "trex": full() + struct.pack(">IIIII", 1, 1, 1, 0, 0),
    "tfhd": full(0x8) + struct.pack(">II", 1, 1),  # flag 0x8: a default sample duration
    "trun": full(0x100) + struct.pack(">III", 2, 1, 1),  # flag 0x100: per-sample durations
}
BODIES["avc1"] = (
    bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", 1280, 720) + bytes(50)
)
BODIES["stsd"] = full() + struct.pack(">I", 1)  # one sample entry follows: avc1


def movie(short: str = "", body: bytes = b"", **bodies: bytes) -> bytes:
    """ftyp + moov (one video trak, mvex) + moof; box `short` gets `body`, others `bodies[kind]`."""

    def b(kind: str, *inner: bytes) -> bytes:
        if kind == short:
            return box(kind, body)
        return box(kind, bodies.get(kind, BODIES.get(kind, b"")) + b"".join(inner))

    stbl = b("stbl", b("stsd", b("avc1", b("pasp"))), b("stts"), b("stsc"), b("stsz"), b("stco"))
    media = b("mdia", b("mdhd"), b("hdlr"), b("minf", stbl))
    trak = b("trak", b("tkhd"), b("edts", b("elst")), media)
    moov = b("moov", b("mvhd"), trak, b("mvex", b("mehd"), b("trex")))
    return b("ftyp") + moov + b("moof", b("traf", b("tfhd"), b("trun")))


def read(data: bytes) -> boxes.Layout:
    return boxes.read_layout(io.BytesIO(data), len(data))


def test_the_movie_built_here_reads_whole() -> None:
    # The baseline every malformed shape below departs from: it must read cleanly.
    layout = read(movie())
    (track,) = layout.tracks
    assert (track.handler, track.codec, track.width, track.par) == ("vide", "avc1", 1280, (1, 1))
    assert (track.sample_count, track.fragment_samples, track.table_problem) == (90, 2, "")
    assert (layout.movie_timescale, track.edits) == (1000, [(3000, 0, 1.0)])


def test_a_40_byte_file_with_a_short_mvhd_is_bad_index() -> None:
    data = box("ftyp", b"isom\0\0\0\0") + box("moov", box("mvhd", full() + bytes(4)))
    assert len(data) == 40
    with pytest.raises(ProbeError, match="the mvhd box is 8 bytes, shorter than its fixed") as exc:
        read(data)
    assert exc.value.kind == "bad_index"


# (box, body it gets instead of its own): each shorter than the fixed fields the reader needs.
SHORT = [
    ("mvhd", b""),
    ("mvhd", full(version=1) + bytes(24)),  # a version 1 mvhd needs 32 bytes
    ("tkhd", b"\0\0\0"),
    ("tkhd", BODIES["tkhd"][:80]),  # no presentation height
    ("elst", b"\0\0\0"),
    ("mdhd", full() + bytes(12)),
    ("hdlr", full() + bytes(4)),
    ("stsd", full()),
    ("avc1", bytes(40)),
    ("pasp", b"\0\0\0\1"),
    ("stts", full()),
    ("stsz", full() + bytes(4)),
    ("stsc", b"\0\0"),
    ("stco", full()),
    ("mehd", full(version=1) + bytes(4)),
    ("trex", full() + bytes(12)),
    ("tfhd", full(0x8) + struct.pack(">I", 1)),  # flag 0x8 names a default duration it lacks
    ("tfhd", full()),
    ("trun", full(0x1) + struct.pack(">I", 1)),  # flag 0x1 names a data offset it lacks
    ("trun", b"\0"),
]


@pytest.mark.parametrize(("kind", "body"), SHORT, ids=[f"{k}-{len(b)}" for k, b in SHORT])
def test_a_box_shorter_than_its_fixed_fields_is_bad_index_naming_it(kind: str, body: bytes) -> None:
    with pytest.raises(ProbeError, match=f"the {kind} box is {len(body)} bytes?, shorter") as exc:
        read(movie(kind, body))
    assert exc.value.kind == "bad_index"


@pytest.mark.parametrize(("kind", "body"), SHORT[::3], ids=[k for k, _ in SHORT[::3]])
def test_check_one_answers_a_short_box_with_an_error_result(
    tmp_path: Path, kind: str, body: bytes
) -> None:
    path = tmp_path / f"short_{kind}.mp4"
    path.write_bytes(movie(kind, body))
    result = check_one(path)
    assert result.verdict == "error"
    assert result.error is not None
    assert (result.error.kind, kind in result.error.message) == ("bad_index", True)


def test_the_cli_names_the_short_box_not_the_unpack_error(tmp_path: Path) -> None:
    path = tmp_path / "short_mvhd.mp4"
    path.write_bytes(box("ftyp", b"isom\0\0\0\0") + box("moov", box("mvhd", full() + bytes(4))))
    done = run_cli("check", "--jsonl", "--no-cache", str(path), timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stdout.splitlines()
    error = json.loads(line)["error"]
    assert error["kind"] == "bad_index"
    assert "mvhd" in error["message"] and "unpack" not in error["message"]
    assert done.returncode == 3


def test_an_stsz_of_zero_samples_under_stts_samples_is_bad_index() -> None:
    layout = read(movie(stsz=full() + struct.pack(">II", 100, 0)))
    assert "stsz) list 0 samples but the durations (stts) 90" in layout.tracks[0].table_problem


def test_an_stts_covering_half_the_samples_is_bad_index() -> None:
    layout = read(movie(stts=full() + struct.pack(">III", 1, 45, 1)))
    assert "stsz) list 90 samples but the durations (stts) 45" in layout.tracks[0].table_problem


def _edit_fixture(name: str, kind: str, body: bytes) -> bytes:
    """A fixture with the body of its first `kind` box (under moov/trak/mdia/minf/stbl) replaced
    by one of the same length."""
    data = bytearray((FIXTURES / "media" / name).read_bytes())
    at = data.index(kind.encode()) + 4
    size = struct.unpack_from(">I", data, at - 8)[0]
    assert len(body) <= size - 8
    data[at : at + len(body)] = body
    return bytes(data)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("stsz", full() + struct.pack(">II", 0, 0)),  # no samples, while stts lists 90
        ("stts", full() + struct.pack(">III", 1, 45, 512)),  # durations for half of 90 samples
        ("stsz", full() + struct.pack(">II", 100, 0xFFFFFFFF)),  # four billion samples
    ],
    ids=["stsz-zero", "stts-half", "stsz-2^32-1"],
)
def test_a_contradictory_index_in_a_real_file_is_an_error_not_a_pass(
    tmp_path: Path, kind: str, body: bytes
) -> None:
    path = tmp_path / f"{kind}.mp4"
    path.write_bytes(_edit_fixture("fps_30.mp4", kind, body))
    result = check_one(path)
    assert result.verdict == "error", result.facts
    assert result.error is not None
    assert result.error.kind == "bad_index"
    assert result.error.message.startswith("the video index contradicts itself")


def test_a_contradiction_is_recorded_on_the_track_for_probe_to_judge() -> None:
    # The reader records it (probe's _check_complete makes it bad_index for a video track only:
    # audio feeds nothing but has_audio, so an odd sound table is not worth failing the file).
    layout = read(movie(hdlr=full() + bytes(4) + b"soun" + bytes(13), stts=full() + bytes(4)))
    assert layout.tracks[0].handler == "soun"
    assert "stsz) list 90 samples but the durations (stts) 0" in layout.tracks[0].table_problem


def _trun_movie(count: int, trun_flags: int, per_sample: bytes = b"") -> bytes:
    return movie(trun=full(trun_flags) + struct.pack(">I", count) + per_sample)


_COUNT_IN_A_CHILD = """
import io, json, sys
from preflight.probing import boxes
from preflight.probing.bmff import MAX_ENTRIES
data = sys.stdin.buffer.read()
track = boxes.read_layout(io.BytesIO(data), len(data)).tracks[0]
print(json.dumps([track.fragment_samples, track.deltas[1], track.table_problem]))
"""


def test_a_trun_of_2_32_samples_with_defaults_is_counted_without_a_loop(tmp_path: Path) -> None:
    # In a child with a timeout, so that a reader looping four billion times fails, not hangs.
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_IN_A_CHILD],
        input=_trun_movie(0xFFFFFFFF, 0),
        capture_output=True,
        timeout=60,
        check=True,
    )
    samples, with_duration_1, problem = json.loads(done.stdout)
    assert (samples, with_duration_1) == (0xFFFFFFFF, 0xFFFFFFFF + 90)
    assert "trun) list 4294967385 samples, more than any video has" in problem


def test_a_trun_of_2_32_samples_through_the_cli_is_bad_index_in_time(tmp_path: Path) -> None:
    # In a child with a timeout: the reader as it was would loop for an hour here.
    path = tmp_path / "trun.mp4"
    path.write_bytes(_trun_movie(0xFFFFFFFF, 0))
    done = run_cli("check", "--jsonl", "--no-cache", str(path), timeout=60)
    assert json.loads(done.stdout)["error"]["kind"] == "bad_index", done.stderr


def test_a_trun_count_beyond_its_per_sample_bytes_counts_the_samples_present() -> None:
    layout = read(_trun_movie(0xFFFFFFFF, 0x300, struct.pack(">6I", 7, 10, 7, 10, 7, 10)))
    track = layout.tracks[0]
    assert (track.fragment_samples, track.deltas[7], track.table_problem) == (3, 3, "")


@pytest.mark.parametrize("kind", ["stts", "stsc", "stco", "elst"])
def test_a_table_count_of_2_32_reads_only_the_entries_its_bytes_hold(kind: str) -> None:
    body = bytearray(BODIES[kind])
    body[4:8] = b"\xff\xff\xff\xff"
    layout = read(movie(**{kind: bytes(body)}))
    track = layout.tracks[0]
    assert (track.sample_count, sum(track.deltas.values()), len(track.edits)) == (90, 92, 1)


@pytest.mark.parametrize(
    ("field_size", "packed"), [(4, b"\x12\x30"), (8, b"\1\2\3"), (16, bytes(6))]
)
def test_an_stz2_count_of_2_32_reads_only_the_sizes_its_bytes_hold(
    field_size: int, packed: bytes
) -> None:
    stz2 = full() + bytes(3) + bytes([field_size]) + struct.pack(">I", 0xFFFFFFFF) + packed
    data = movie(stsz=b"").replace(box("stsz"), box("stz2", stz2))
    track = read(data).tracks[0]
    assert track.sample_count == 0xFFFFFFFF
    assert "more than any video has" in track.table_problem


def test_an_stz2_with_a_field_size_not_4_8_or_16_is_bad_index() -> None:
    stz2 = full() + bytes(3) + bytes([12]) + struct.pack(">I", 90)
    with pytest.raises(ProbeError, match="12-bit sizes") as exc:
        read(movie(stsz=b"").replace(box("stsz"), box("stz2", stz2)))
    assert exc.value.kind == "bad_index"


def test_deep_nesting_is_read_at_the_fixed_chain_depth_only() -> None:
    nested = b""
    for _ in range(20000):
        nested = box("trak", nested)
    data = movie(mvhd=BODIES["mvhd"] + nested)  # twenty thousand traks deep, inside mvhd's tail
    data2 = box("ftyp", b"isom\0\0\0\0") + box("moov", box("mvhd", BODIES["mvhd"]) + nested)
    assert read(data).tracks[0].sample_count == 90
    assert len(read(data2).tracks) == 1  # only the outermost trak is a track; its inside is empty


def test_a_64_bit_size_of_2_63_allocates_nothing() -> None:
    huge = struct.pack(">I4sQ", 1, b"mdat", 1 << 63)
    layout = read(movie() + huge + bytes(64))
    assert [b.type for b in layout.top][-1] == "mdat" and layout.top[-1].size == 1 << 63
    # As the moov's own size: runs past the end of the file.
    moov = movie().split(b"moov", 1)[1]
    cut = box("ftyp", b"isom\0\0\0\0") + struct.pack(">I4sQ", 1, b"moov", 1 << 63) + moov
    with pytest.raises(ProbeError) as exc:
        read(cut)
    assert exc.value.kind == "truncated"
    # As a child's: the child is dropped, the boxes before it still count.
    child = struct.pack(">I4sQ", 1, b"trak", 1 << 63) + bytes(8)
    layout = read(box("ftyp", b"isom\0\0\0\0") + box("moov", box("mvhd", BODIES["mvhd"]) + child))
    assert (layout.movie_timescale, layout.tracks) == (1000, [])


def test_a_box_size_below_its_header_size() -> None:
    with pytest.raises(ProbeError) as exc:
        read(struct.pack(">I4s", 4, b"ftyp") + bytes(12))
    assert exc.value.kind == "not_media"
    child = struct.pack(">I4s", 3, b"trak") + bytes(8)
    layout = read(box("ftyp", b"isom\0\0\0\0") + box("moov", box("mvhd", BODIES["mvhd"]) + child))
    assert layout.tracks == []


def test_a_file_of_a_million_tiny_boxes_is_not_walked_box_by_box() -> None:
    data = box("ftyp", b"isom\0\0\0\0") + box("free") * 150_000 + movie()
    with pytest.raises(ProbeError, match="more than 131072 top-level boxes") as exc:
        read(data)
    assert exc.value.kind == "not_media"


def test_a_huge_ftyp_keeps_a_bounded_brand_list() -> None:
    data = (
        box("ftyp", b"isom\0\0\0\0" + b"mp41" * 250_000)
        + movie().split(b"ftyp", 1)[1][len(BODIES["ftyp"]) :]
    )
    layout = read(data)
    assert layout.major_brand == "isom" and layout.tracks


# --- property tests: any bytes, and real files mutated ------------------------------------------

MEDIA = sorted((FIXTURES / "media").glob("*.mp4")) + sorted((FIXTURES / "media").glob("*.mov"))
MEDIA_BYTES = [p.read_bytes() for p in MEDIA if 0 < p.stat().st_size < 1 << 20]


_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "edts", "mvex", "moof", "traf", "dinf"}


@dataclass
class Node:
    kind: str  # "" for the bytes after the last whole box, kept as they were
    body: bytes = b""
    kids: list[Node] | None = None  # a container's children


def parse_tree(buf: bytes) -> list[Node]:
    """The box tree of `buf` (containers opened), so that a mutation can re-size the parents."""
    nodes: list[Node] = []
    pos = 0
    while pos + 8 <= len(buf):
        size, kind = struct.unpack_from(">I4s", buf, pos)
        size = len(buf) - pos if size == 0 else size
        if size < 8 or pos + size > len(buf):
            break
        name, body = kind.decode("latin-1"), buf[pos + 8 : pos + size]
        nodes.append(Node(name, body, parse_tree(body) if name in _CONTAINERS else None))
        pos += size
    nodes.append(Node("", buf[pos:]))
    return nodes


def write_tree(nodes: list[Node]) -> bytes:
    out = b""
    for node in nodes:
        if not node.kind:
            out += node.body
        else:
            out += box(node.kind, write_tree(node.kids) if node.kids is not None else node.body)
    return out


def leaves(nodes: list[Node]) -> list[Node]:
    """Every box of the index that is not a container (mdat, free and ftyp left alone)."""
    out: list[Node] = []
    for node in nodes:
        if node.kids is not None:
            out += leaves(node.kids)
        elif node.kind and node.kind not in ("mdat", "free", "ftyp"):
            out.append(node)
    return out


def mutate(data: bytes, ops: list[tuple[str, int]]) -> bytes:
    """Apply (operation, position) pairs to the index of a real file, parents re-sized after:
    `shorten` a box's body, `flip` a byte in it, set its `count` field (bytes 4-8 of a full box,
    the entry count of stts/stsc/stco/elst/trun) or a `u32` in it to 2^32-1, `halve` an stts or
    stsz count (a contradictory table), or `cut` the file."""
    tree = parse_tree(data)
    boxes_ = leaves(tree)
    cut = len(data)
    for op, position in ops:
        if op == "cut":
            cut = position % max(1, len(data))
            continue
        if not boxes_:
            break
        node = boxes_[position % len(boxes_)]
        body = bytearray(node.body)
        at = (position >> 8) % max(1, len(body))
        if op == "shorten":
            del body[at:]
        elif op == "flip" and body:
            body[at] ^= 0xFF
        elif op == "u32":
            body[at : at + 4] = b"\xff\xff\xff\xff"
        elif op == "count":
            start = 8 if node.kind in ("stsz", "stz2") else 4
            body[start : start + 4] = b"\xff\xff\xff\xff"
        elif op == "halve" and len(body) >= 12:
            start = 8 if node.kind in ("stsz", "stz2", "stts") else 4
            value = struct.unpack_from(">I", body, start)[0]
            body[start : start + 4] = struct.pack(">I", value // 2)
        node.body = bytes(body)
    return write_tree(tree)[:cut]


OPS = ["shorten", "flip", "u32", "count", "halve", "cut"]


@contextmanager
def address_space(extra: int) -> Iterator[None]:
    """Cap this process's address space at what it uses now plus `extra` bytes, then restore it:
    an allocation past the cap raises MemoryError, which the property tests report as a failure."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    cap = in_use + extra if hard == resource.RLIM_INFINITY else min(in_use + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_or_probe_error(data: bytes) -> None:
    """The property: the reader returns a Layout or raises ProbeError with a documented kind."""
    try:
        read(data)
    except ProbeError as exc:
        assert exc.kind in ERROR_KINDS, exc.kind
        assert str(exc) and "\n" not in str(exc)


_BOUND = settings(
    deadline=2000,  # ms per example: proves "no runaway loop", not a speed claim
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    max_examples=300,
    derandomize=True,  # the same examples on every run, so CI is reproducible
)
_BOX_TYPES = [
    "stts",
    "stss",
    "stsc",
    "stco",
    "co64",
    "elst",
    "trun",
    "stsz",
    "stz2",
    "ftyp",
    "moov",
    "trak",
    "mdia",
    "minf",
    "stbl",
    "mvhd",
    "tkhd",
    "mdhd",
]
_BOX_TYPES += ["hdlr", "stsd", "avc1", "pasp", "edts", "mvex", "mehd", "trex", "moof", "traf"]
_BOX_TYPES += ["tfhd", "mdat", "free"]
# Trees of real box types with random bodies and sizes, so the fuzz reaches every parser.
_trees = st.recursive(
    st.builds(box, st.sampled_from(_BOX_TYPES), st.binary(max_size=64)),
    lambda inner: st.builds(
        lambda kind, kids: box(kind, b"".join(kids)),
        st.sampled_from(_BOX_TYPES),
        st.lists(inner, max_size=4),
    ),
    max_leaves=24,
)


@_BOUND
@given(st.binary(max_size=4096))
def test_any_bytes_read_or_raise_probe_error(data: bytes) -> None:
    with address_space(500 << 20):
        read_or_probe_error(data)


@_BOUND
@given(st.lists(_trees, min_size=1, max_size=4), st.lists(st.integers(0, 1 << 20), max_size=4))
def test_any_box_tree_reads_or_raises_probe_error(tops: list[bytes], flips: list[int]) -> None:
    data = bytearray(b"".join(tops))
    for at in flips:  # a few flipped bytes give odd sizes, flags and versions
        data[at % len(data)] ^= 0xFF
    with address_space(500 << 20):
        read_or_probe_error(box("ftyp", b"isom\0\0\0\0") + bytes(data))


@_BOUND
@given(
    st.sampled_from(MEDIA_BYTES),
    st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 24)),
        min_size=1,
        max_size=6,
    ),
)
def test_any_mutated_fixture_reads_or_raises_probe_error(
    data: bytes, ops: list[tuple[str, int]]
) -> None:
    with address_space(500 << 20):
        read_or_probe_error(mutate(data, ops))


@pytest.mark.parametrize(
    ("kind", "width", "flags"),
    [("stts", 8, 0), ("stsc", 12, 0), ("stco", 4, 0), ("elst", 12, 0), ("trun", 4, 0x100)],
)
def test_a_table_of_more_entries_than_preflight_reads_is_bad_index(
    kind: str, width: int, flags: int
) -> None:
    # Entries become Python objects: past MAX_ENTRIES (2^20) a hostile 64 MiB index would cost
    # gigabytes and seconds (stts: 850 MB and 4 s at 7.8 million distinct durations).
    count = MAX_ENTRIES + 1
    body = full(flags) + struct.pack(">I", count) + bytes(width * count)
    with pytest.raises(ProbeError, match=f"the {kind} box holds {count} entries") as exc:
        read(movie(**{kind: body}))
    assert exc.value.kind == "bad_index"
