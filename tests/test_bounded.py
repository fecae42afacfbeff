"""Untrusted bytes parsed by libmediainfo and ffprobe run bounded (issue 10, A.1).

Hostile files are made here from real ones by recipe (byte flips, huge entry counts, thousands of
tracks); each is answered within its deadline, with a documented error kind, by the real CLI,
over loopback HTTP and in `watch`; workers that die are replaced, and none outlives its parent.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight import check_one, load_policy
from preflight.pipeline import CheckOptions
from preflight.probing import mediainfo, worker
from preflight.probing.limits import ProbeLimits
from preflight.probing.options import RemoteOptions
from preflight.testing.media_server import MediaServer
from preflight.verdict import Result
from preflight.watch import WatchOptions, watch

from .conftest import CORPUS, FIXTURES, preflight_script, run_cli

MEDIA = FIXTURES / "media"
GOOD = MEDIA / "fmt_mp4_h264.mp4"
DOLBY_VISION = CORPUS / "media" / "dovi_p7_two_hevc_tracks.mp4"
BOUNDED = {"timeout", "resource_limit"}  # the documented kinds of a parse that overran
TIMEOUT_S = 4.0  # --probe-timeout in these tests: short, yet ~3x what the slowest bounded case
SLACK_S = 30.0  # generous: only a hang (or a machine on fire) takes this long
POLICY = load_policy()


# -- recipes for hostile files ----------------------------------------------------------------


def flipped_dolby_vision(seed: int = 41, flips: int = 300) -> bytes:
    """The 9 KB Dolby Vision file with `flips` random bytes changed after the moov header.

    Seed 41 makes in-process libmediainfo run 15 s and reach 3.1 GB RSS before it gives up
    (measured with an 8 GiB cap; the issue saw 42 s and 12.6 GB without one).
    """
    if not DOLBY_VISION.exists():
        pytest.fail(f"the corpus is missing at {CORPUS}: these tests mutate its Dolby Vision file")
    data = bytearray(DOLBY_VISION.read_bytes())
    moov = data.index(b"moov") + 4
    rng = random.Random(seed)
    for _ in range(flips):
        data[rng.randrange(moov, len(data))] = rng.randrange(256)
    return bytes(data)


def _find(data: bytes, path: list[str], start: int = 0, end: int | None = None) -> int:
    """Offset of the box at `path` (types from the top level down)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if kind.decode("latin-1") == path[0]:
            return pos if len(path) == 1 else _find(data, path[1:], pos + 8, pos + size)
        pos += size
    raise KeyError(path)


def huge_entry_count(box: list[str]) -> bytes:
    """A valid file whose full box at `box` claims 2^32-1 entries (only the real ones follow)."""
    data = bytearray(GOOD.read_bytes())
    struct.pack_into(">I", data, _find(data, box) + 12, 0xFFFFFFFF)  # after size, type, flags
    return bytes(data)


def many_tracks(count: int = 3000) -> bytes:
    """A valid file with `count` copies of its video track (track ids 1..count), moov last."""
    data = bytearray((MEDIA / "moov_at_end.mp4").read_bytes())
    moov = _find(data, ["moov"])
    assert moov + struct.unpack_from(">I", data, moov)[0] == len(data), "moov must come last"
    trak = _find(data, ["moov", "trak"])
    body = data[trak : trak + struct.unpack_from(">I", data, trak)[0]]
    tkhd = _find(body, ["trak", "tkhd"])
    id_at = tkhd + 12 + (16 if body[tkhd + 8] == 1 else 8)  # version 1 has 64-bit times
    for track_id in range(2, count + 1):
        copy = bytearray(body)
        struct.pack_into(">I", copy, id_at, track_id)
        data += copy
    struct.pack_into(">I", data, moov, len(data) - moov)
    return bytes(data)


STTS = ["moov", "trak", "mdia", "minf", "stbl", "stts"]
ELST = ["moov", "trak", "edts", "elst"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    files = {
        "dolby_vision_flipped.mp4": flipped_dolby_vision(),
        "stts_2pow32.mp4": huge_entry_count(STTS),
        "elst_2pow32.mp4": huge_entry_count(ELST),
        "tracks_3000.mp4": many_tracks(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def _results(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert "Traceback" not in done.stderr, done.stderr
    return {Path(r["source"]).name: r for r in json.loads(done.stdout)["results"]}


# -- the hostile files, local ------------------------------------------------------------------


def test_hostile_files_through_mediainfo_are_bounded_errors(hostile: dict[str, Path]) -> None:
    started = time.monotonic()
    done = run_cli(
        "check",
        "--json",
        "--no-cache",
        "--probe",
        "mediainfo",
        "--probe-timeout",
        str(TIMEOUT_S),
        *map(str, hostile.values()),
        timeout=SLACK_S + TIMEOUT_S * len(hostile),
    )
    assert time.monotonic() - started < SLACK_S + TIMEOUT_S * len(hostile)
    results = _results(done)
    assert done.returncode == 3
    for name in hostile:
        result = results[name]
        assert result["verdict"] == "error", (name, result)
        assert result["error"]["kind"] in BOUNDED, (name, result["error"])
        assert "\n" not in result["error"]["message"]
        # Each file costs at most its deadline (plus starting a worker), never minutes.
        assert result["probe"]["elapsed_ms"] < (TIMEOUT_S + 20) * 1000, (name, result["probe"])
    # The stts loop spins without growing: only the deadline can stop it.
    assert results["stts_2pow32.mp4"]["error"]["kind"] == "timeout"


def test_hostile_files_by_default_are_read_by_the_box_reader_alone(
    hostile: dict[str, Path],
) -> None:
    done = run_cli("check", "--json", "--no-cache", *map(str, hostile.values()), timeout=SLACK_S)
    results = _results(done)
    for name in hostile:
        result = results[name]
        assert result["probe"]["backend"] == "boxes", (name, result["probe"])
        assert result["error"] is None or result["error"]["kind"] not in BOUNDED, result
    assert results["tracks_3000.mp4"]["facts"]["video_tracks"] == 3000


def test_a_memory_bomb_hits_the_memory_bound_not_the_machine(hostile: dict[str, Path]) -> None:
    done = run_cli(
        "check",
        "--json",
        "--no-cache",
        "--probe",
        "mediainfo",
        "--probe-memory-mib",
        "256",
        "--probe-timeout",
        "30",  # the memory bound must stop it, long before this
        str(hostile["elst_2pow32.mp4"]),
        str(GOOD),
        timeout=SLACK_S * 2,
    )
    results = _results(done)
    bomb = results["elst_2pow32.mp4"]
    assert bomb["verdict"] == "error" and bomb["error"]["kind"] == "resource_limit", bomb
    assert "256 MiB" in bomb["error"]["message"]
    assert results[GOOD.name]["verdict"] == "pass"  # the same bound holds a real file easily


def test_a_bound_too_small_to_start_the_backend_says_so() -> None:
    for backend in ("mediainfo", "ffprobe"):
        done = run_cli(
            "check",
            "--json",
            "--no-cache",
            "--probe",
            backend,
            "--probe-memory-mib",
            "16",
            str(GOOD),
        )
        (result,) = _results(done).values()
        assert result["verdict"] == "error" and result["error"]["kind"] == "resource_limit"
        assert "\n" not in result["error"]["message"]


def test_probe_options_refuse_nonsense() -> None:
    for flag, value in (("--probe-timeout", "0"), ("--probe-memory-mib", "1.5")):
        done = run_cli("check", flag, value, str(GOOD))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert flag in done.stderr


# -- the worker pool -------------------------------------------------------------------------


def _state(pid: int) -> str:
    """The process state letter from /proc (Z: dead, not yet reaped); '' when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def test_a_killed_idle_worker_is_replaced_and_the_next_file_judged() -> None:
    options = CheckOptions(backend="mediainfo")
    assert check_one(GOOD, POLICY, options=options).verdict == "pass"
    before = worker.POOL.pids()
    assert before, "a warm worker stays after a file"
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    # Until its last thread has exited the killed worker cannot be reaped, and /proc already
    # shows the leader as a zombie: wait for the pool itself to see it dead.
    deadline = time.monotonic() + SLACK_S
    while set(worker.POOL.pids()) & set(before):
        assert time.monotonic() < deadline, "the killed worker was never seen dead"
        time.sleep(0.02)
    result = check_one(MEDIA / "fps_24.mp4", POLICY, options=options)
    assert result.verdict == "pass", result.error
    assert result.facts is not None and result.facts.video_codec == "h264"
    assert not set(worker.POOL.pids()) & set(before)


def test_a_worker_killed_mid_parse_costs_that_file_only(hostile: dict[str, Path]) -> None:
    worker.POOL.close()  # no idle workers: the next one started is the one parsing
    options = CheckOptions(backend="mediainfo", limits=ProbeLimits(timeout_s=SLACK_S))
    results: list[Result] = []
    thread = threading.Thread(
        target=lambda: results.append(
            check_one(hostile["stts_2pow32.mp4"], POLICY, options=options)
        )
    )
    thread.start()
    deadline = time.monotonic() + SLACK_S
    while not worker.POOL.pids():
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.02)
    time.sleep(0.5)  # let it start parsing
    (pid,) = worker.POOL.pids()
    os.kill(pid, signal.SIGKILL)
    thread.join(SLACK_S)
    assert not thread.is_alive()
    (result,) = results
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "resource_limit" and "SIGKILL" in result.error.message
    assert check_one(GOOD, POLICY, options=options).verdict == "pass"


def test_threads_share_the_pool_and_get_the_same_answers() -> None:
    files = sorted(MEDIA.glob("fps_*.mp4")) + sorted(MEDIA.glob("dur_*.mp4"))
    alone = {f: mediainfo.read(str(f)) for f in files}
    answers: dict[Path, Any] = {}
    lock = threading.Lock()

    def read(path: Path) -> None:
        reading = mediainfo.read(str(path))
        with lock:
            answers[path] = reading

    threads = [threading.Thread(target=read, args=(f,)) for f in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SLACK_S)
    assert answers == alone


def test_the_parent_never_loads_libmediainfo_and_a_default_check_starts_no_worker() -> None:
    code = (
        "import sys\n"
        "from preflight import check_one\n"
        f"assert check_one({str(GOOD)!r}).probe_ms >= 0\n"
        "assert 'preflight.probing.worker' not in sys.modules\n"
        f"assert check_one({str(GOOD)!r}, backend='mediainfo').verdict == 'pass'\n"
        "assert 'pymediainfo' not in sys.modules, 'libmediainfo in the parent'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


# -- no process outlives the CLI ---------------------------------------------------------------


def _processes_with(marker: str) -> list[int]:
    """Pids whose command line holds `marker` (a memory bound no other test uses)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmdline and _state(int(entry.name)) not in ("", "Z"):
            found.append(int(entry.name))
    return found


def test_no_worker_or_ffprobe_survives_the_cli(hostile: dict[str, Path]) -> None:
    mib = 1021  # a bound only this test uses: its children carry it on their command line
    marker = str(mib * 1024 * 1024)
    done = run_cli(
        "check",
        "--json",
        "--no-cache",
        "--probe",
        "both",
        "--probe-memory-mib",
        str(mib),
        "--probe-timeout",
        "2",
        str(GOOD),
        str(MEDIA / "fps_24.mp4"),
        str(hostile["stts_2pow32.mp4"]),
        timeout=SLACK_S * 2,
    )
    assert _results(done)["stts_2pow32.mp4"]["error"]["kind"] == "timeout"
    assert _processes_with(marker) == [] and _processes_with(f"--as={marker}") == []


def test_a_worker_stuck_in_a_parse_dies_when_the_cli_is_killed(hostile: dict[str, Path]) -> None:
    mib = 1019
    marker = str(mib * 1024 * 1024)
    cli = subprocess.Popen(
        [
            preflight_script(),
            *("check", "--no-cache", "--probe", "mediainfo", "--probe-timeout", "600"),
            *("--probe-memory-mib", str(mib), str(hostile["stts_2pow32.mp4"])),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SLACK_S
        while not _processes_with(marker):
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the endless parse
        cli.kill()  # no atexit, no stdin EOF while parsing: only the orphan watch can end it
        cli.wait(timeout=SLACK_S)
        deadline = time.monotonic() + SLACK_S
        while _processes_with(marker):
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.05)
    finally:
        cli.kill()
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


# -- watch -----------------------------------------------------------------------------------


def test_watch_judges_a_good_file_beside_a_hostile_one(
    tmp_path: Path, hostile: dict[str, Path]
) -> None:
    shutil.copyfile(hostile["stts_2pow32.mp4"], tmp_path / "hostile.mp4")
    shutil.copyfile(GOOD, tmp_path / "good.mp4")
    seen: list[Result] = []
    stop = threading.Event()
    options = CheckOptions(backend="mediainfo", limits=ProbeLimits(timeout_s=2.0))
    thread = threading.Thread(
        target=watch,
        args=(tmp_path,),
        kwargs={
            "policy": POLICY,
            "check_options": options,
            "options": WatchOptions(interval_s=0.05, settle_s=0.2),
            "on_result": lambda result, _moved: seen.append(result),
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + SLACK_S
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(SLACK_S)
    by_name = {Path(r.source).name: r for r in seen}
    assert by_name["good.mp4"].verdict == "pass"
    hostile_result = by_name["hostile.mp4"]
    assert hostile_result.error is not None and hostile_result.error.kind == "timeout"


# -- over a URL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_server(hostile: dict[str, Path]) -> Iterator[MediaServer]:
    with MediaServer(next(iter(hostile.values())).parent) as server:
        yield server


def test_hostile_bodies_over_http_give_the_same_bounded_errors(
    hostile_server: MediaServer, hostile: dict[str, Path]
) -> None:
    urls = [hostile_server.url(name) for name in hostile]
    done = run_cli(
        "check",
        "--json",
        "--no-cache",
        "--allow-private-urls",
        "--probe",
        "mediainfo",
        "--probe-timeout",
        str(TIMEOUT_S),
        *urls,
        timeout=SLACK_S + TIMEOUT_S * len(urls),
    )
    results = _results(done)
    for name in hostile:
        error = results[name]["error"]
        assert error is not None and error["kind"] in BOUNDED, (name, results[name])
    assert results["stts_2pow32.mp4"]["error"]["kind"] == "timeout"


@pytest.mark.parametrize("backend", ["mediainfo", "ffprobe"])
def test_backends_never_touch_the_network_themselves(backend: str) -> None:
    # Every request the server saw is one our checked reader made and counted: the backend read
    # a snapshot, so it followed no redirect and reached no address on its own.
    with MediaServer(MEDIA) as server:
        options = CheckOptions(
            backend=backend,
            allow_private_urls=True,
            remote=RemoteOptions(connect_timeout_s=5, read_timeout_s=5),
        )
        result = check_one(server.url("moov_at_end.mp4"), POLICY, options=options)
        seen = len(server.requests)
    assert result.verdict == "pass" and result.remote is not None
    assert result.facts == check_one(MEDIA / "moov_at_end.mp4", POLICY, options=options).facts
    assert seen == result.remote.transfer.requests


@pytest.mark.parametrize("backend", ["mediainfo", "ffprobe"])
def test_a_huge_box_beside_the_index_is_not_fetched_for_the_backends(
    tmp_path: Path, backend: str
) -> None:
    # 8 MiB of `uuid` after moov: only its header is worth fetching for a backend.
    body = b"\x00" * 16 + bytes(8 << 20)  # the usertype, then the payload
    data = (MEDIA / "moov_at_end.mp4").read_bytes() + struct.pack(">I", 8 + len(body))
    (tmp_path / "big_uuid.mp4").write_bytes(data + b"uuid" + body)
    options = CheckOptions(
        backend=backend,
        allow_private_urls=True,
        remote=RemoteOptions(connect_timeout_s=5, read_timeout_s=5),
    )
    with MediaServer(tmp_path) as server:
        result = check_one(server.url("big_uuid.mp4"), POLICY, options=options)
        sent = server.bytes_sent
    assert result.verdict == "pass", result.error
    assert sent < 1 << 20
