"""URLs in bulk against real loopback servers: a batch keeps its connections alive and shares them,
opens at most `per_host` to a host, asks only what the box walk needs, and a pooled connection
still goes only to an address its probe's own gate judged. Counted at the server; never timed.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight import check_one, load_policy
from preflight.batch import URL_WORKERS, default_workers, run_batch
from preflight.pipeline import CheckOptions
from preflight.policy.url import UrlGate
from preflight.probing import boxes
from preflight.probing.deadline import Deadline
from preflight.probing.options import DEFAULT_PER_HOST, RemoteOptions
from preflight.probing.remote import fetch
from preflight.probing.transport import ConnectionPools, open_session
from preflight.testing.media_server import Faults, MediaServer
from preflight.verdict import Result

from .conftest import FIXTURES, make_video, run_cli, run_json

POLICY = load_policy()
CLIP = "fmt_mp4_h264.mp4"
PUBLIC_LOOPBACK = ("127.0.0.1/32",)


def _gate() -> UrlGate:
    """What the pipeline hands the fetcher for one probe: loopback counted as public."""
    return UrlGate(public_networks=PUBLIC_LOOPBACK)


# Each shape and the requests its box walk needs, at most: faststart, the first 64 KiB; moov at the
# end, the first read and one read of the tail; fragmented, one more per moof past the first read
# (here one) and one for the trailing mfra.
SHAPES = {
    "faststart": (["-movflags", "+faststart"], 1),
    "moov_at_end": ([], 2),
    "fragmented": (["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-g", "15"], 3),
}


def _options(per_host: int = DEFAULT_PER_HOST, **remote: Any) -> CheckOptions:
    settings: dict[str, Any] = {"connect_timeout_s": 5, "read_timeout_s": 5, **remote}
    return CheckOptions(
        allow_private_urls=True, remote=RemoteOptions(per_host=per_host, **settings)
    )


@pytest.fixture(scope="module")
def shapes(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 1 s 640x360 videos (~250 KB: the moov of a moov-at-end file is past the first read),
    and 8 copies of each, as a batch of URLs on one host would be."""
    folder = tmp_path_factory.mktemp("url-batch")
    for shape, (flags, _) in SHAPES.items():
        seed = make_video(
            ffmpeg, folder / f"{shape}.mp4", "testsrc2=s=640x360:r=30:d=1", "-b:v", "2M", *flags
        )
        for i in range(8):
            shutil.copyfile(seed, folder / f"{i}-{shape}.mp4")
    return folder


@pytest.fixture
def server(shapes: Path) -> Iterator[MediaServer]:
    # 20 ms a request: enough that a batch would open a connection per worker if nothing held it.
    with MediaServer(shapes, faults=Faults(latency_s=0.02)) as running:
        yield running


def _copies(server: MediaServer, shapes: Path) -> list[str]:
    return sorted(server.url(p.name) for p in shapes.glob("*-*.mp4"))


def _ok(results: list[Result]) -> None:
    assert all(r.verdict != "error" and r.facts is not None for r in results), [
        r.error for r in results
    ]


def test_a_batch_on_one_host_reuses_a_few_connections(server: MediaServer, shapes: Path) -> None:
    urls = _copies(server, shapes)
    results = run_batch(urls, POLICY, _options(per_host=4), workers=12)
    _ok(results)
    assert server.connections <= 4  # the per-host bound holds with 12 workers in flight
    requests = server.requests
    assert len(requests) >= len(urls) > server.connections
    ports = {r.client_port for r in requests}
    assert len(ports) <= 4
    # Reuse: some connection carried requests of several URLs.
    assert max(len({r.path for r in requests if r.client_port == p}) for p in ports) >= 2


def test_one_worker_keeps_one_connection_for_the_whole_batch(
    server: MediaServer, shapes: Path
) -> None:
    urls = _copies(server, shapes)[:6]
    _ok(run_batch(urls, POLICY, _options(), workers=1))
    assert server.connections == 1 and len(server.requests) >= 6


def test_the_library_check_shares_connections_too(server: MediaServer, shapes: Path) -> None:
    from preflight import check, iter_check

    urls = _copies(server, shapes)[:6]
    _ok(check(urls, POLICY, options=_options()))
    assert server.connections == 1 and len(server.requests) >= 6
    # Each iteration has its own pools: a second one opens its own connection.
    first = next(iter_check(urls, POLICY, options=_options()))
    assert first.verdict != "error"
    assert server.connections == 2


def test_the_same_facts_with_and_without_shared_connections(
    server: MediaServer, shapes: Path
) -> None:
    urls = _copies(server, shapes)[:6]
    alone = [check_one(url, POLICY, options=_options()) for url in urls]
    shared = run_batch(urls, POLICY, _options(), workers=4)
    assert [r.facts for r in shared] == [r.facts for r in alone]
    assert [r.verdict for r in shared] == [r.verdict for r in alone]


@pytest.mark.parametrize("shape", SHAPES)
def test_requests_per_url_by_shape(server: MediaServer, shapes: Path, shape: str) -> None:
    urls = [server.url(p.name) for p in sorted(shapes.glob(f"*-{shape}.mp4"))]
    _ok(run_batch(urls, POLICY, _options(), workers=4))
    assert not any(r.method == "HEAD" for r in server.requests)
    assert len(server.requests) <= SHAPES[shape][1] * len(urls)
    if shape == "moov_at_end":  # the fixture really keeps its index past the first read
        with (shapes / f"{shape}.mp4").open("rb") as f:
            top = boxes.walk_top(f, (shapes / f"{shape}.mp4").stat().st_size)
        assert next(b for b in top if b.type == "moov").offset > 64 * 1024


def test_the_cli_bounds_connections_per_host(server: MediaServer, shapes: Path) -> None:
    urls = _copies(server, shapes)
    code, report = run_json(
        "check", "--json", "--no-cache", "--quiet", "--allow-private-urls", "--per-host", "3", *urls
    )
    assert code in (0, 1)
    assert len(report["results"]) == len(urls)
    assert all(r["verdict"] != "error" for r in report["results"])
    assert server.connections <= 3 < len(server.requests)


@pytest.mark.parametrize("value", ["0", "1025", "99999999999999999999"])
def test_per_host_out_of_range_is_a_usage_error(value: str) -> None:
    # Above the cap, urllib3 would fill each pool's queue with that many slots (minutes, GBs).
    done = run_cli("check", "--per-host", value, "--allow-private-urls", "http://127.0.0.1:9/a.mp4")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "1 to 1024" in done.stderr


def test_url_batches_default_to_more_workers_than_file_batches() -> None:
    assert default_workers(["http://example.com/a.mp4"]) == URL_WORKERS > DEFAULT_PER_HOST
    assert default_workers(["a.mp4"]) <= 4


def test_a_kept_alive_connection_is_still_cut_at_the_probes_deadline(
    server: MediaServer, shapes: Path
) -> None:
    url = _copies(server, shapes)[0]
    with ConnectionPools() as pools:
        options = _options(deadline_s=1.5)
        assert check_one(url, POLICY, options=options, pools=pools).verdict != "error"
        # The next answer drips a byte a second, on the connection the first probe left open.
        server.faults = Faults(drip_body_s=1.0)
        box: list[Result] = []
        worker = threading.Thread(
            target=lambda: box.append(check_one(url, POLICY, options=options, pools=pools))
        )
        worker.daemon = True
        worker.start()
        worker.join(30)  # a generous bound that proves "no hang", not a speed
        assert box, "the probe outlived its deadline on a reused connection"
    assert box[0].error is not None and box[0].error.kind == "timeout"
    assert server.connections == 1  # it was the kept-alive connection that was cut


# -- a pooled connection only ever goes where its own probe's gate judged ------------------------


@pytest.fixture
def two_addresses() -> Iterator[tuple[MediaServer, MediaServer]]:
    """The same port on 127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to lo)."""
    with MediaServer(FIXTURES / "media", host="127.0.0.1") as first:
        try:
            second = MediaServer(FIXTURES / "media", host="127.0.0.2", port=first.port)
        except OSError as exc:  # pragma: no cover - the port is taken on 127.0.0.2
            pytest.fail(f"cannot bind 127.0.0.2:{first.port}: {exc}")
        with second:
            yield first, second


def test_a_pool_is_not_shared_by_probes_that_judged_other_addresses(
    two_addresses: tuple[MediaServer, MediaServer],
) -> None:
    first, second = two_addresses
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"])
    lock = threading.Lock()

    def rebinding(host: str) -> list[str]:  # a DNS answer that changes between probes
        assert host == "media.test"
        with lock:
            return [next(answers)]

    url = f"http://media.test:{first.port}/{CLIP}"
    results = run_batch([url] * 4, POLICY, _options(resolve=rebinding), workers=1)
    _ok(results)
    # Two probes judged 127.0.0.1 and two 127.0.0.2: each pair reached only its own address,
    # although all four named one host and port and ran on one set of kept-alive connections.
    assert first.connections == second.connections == 1
    assert len(first.requests) == len(second.requests) == 2


def test_a_redirect_to_a_private_address_is_refused_with_shared_connections(
    two_addresses: tuple[MediaServer, MediaServer],
) -> None:
    outer, inner = two_addresses
    options = CheckOptions(
        remote=RemoteOptions(connect_timeout_s=5, read_timeout_s=5, public_networks=PUBLIC_LOOPBACK)
    )
    warm = run_batch([outer.url(CLIP)] * 2, POLICY, options, workers=2)
    assert all(r.facts is not None for r in warm), [r.error for r in warm]
    outer.faults = Faults(redirect_to=inner.url(CLIP))
    results = run_batch([outer.url(CLIP)] * 3, POLICY, options, workers=2)
    for result in results:
        assert result.verdict == "reject" and result.facts is None
        assert [v.rule for v in result.violations] == ["url.public"]
    assert inner.connections == 0 and not inner.requests  # judged, refused, never connected to


def test_one_watchdog_thread_serves_every_probe_of_a_batch(
    server: MediaServer, shapes: Path
) -> None:
    seen: list[int] = []

    def count(_index: int, _result: Result) -> None:
        seen.append(sum(t.name == "preflight-deadline" for t in threading.enumerate()))

    _ok(run_batch(_copies(server, shapes), POLICY, _options(), workers=8, on_result=count))
    assert seen and max(seen) <= 1  # not a timer thread per probe in flight
    assert not any(t.name == "preflight-deadline" for t in threading.enumerate())  # gone after


def test_a_pool_retired_while_in_use_still_serves_its_probe(
    two_addresses: tuple[MediaServer, MediaServer],
) -> None:
    first, second = two_addresses
    first.faults = second.faults = Faults(latency_s=0.02)
    # One pool kept at a time and two addresses in turn: each new pool retires the other one,
    # often while a probe is between its requests on it.
    urls = [first.url(CLIP), second.url(CLIP)] * 6
    with ConnectionPools(max_pools=1) as pools:
        _ok(run_batch(urls, POLICY, _options(), workers=4, pools=pools))


def test_a_probes_deadline_does_not_cut_another_probe_on_its_old_connection(
    shapes: Path,
) -> None:
    # One connection to the host: A's first read hands it back to the pool, B takes it for a read
    # of its own, and A's deadline passes while B is still waiting for its answer. B must finish.
    outcome: dict[str, object] = {}
    with (
        MediaServer(shapes, faults=Faults(latency_s=1.0)) as slow,
        ConnectionPools(per_host=1) as pools,
    ):
        url = slow.url("0-faststart.mp4")

        def probe_b() -> None:
            try:
                b_options = RemoteOptions(public_networks=PUBLIC_LOOPBACK, deadline_s=30)
                with fetch(url, gate=_gate(), options=b_options, pools=pools) as source:
                    outcome["b"] = source.info.status
            except Exception as exc:  # the failure is the finding
                outcome["b"] = f"{type(exc).__name__}: {exc}"

        b = threading.Thread(target=probe_b)
        a_options = RemoteOptions(public_networks=PUBLIC_LOOPBACK, deadline_s=1.5)
        with fetch(url, gate=_gate(), options=a_options, pools=pools):  # answered at ~1 s
            b.start()  # B's request is in flight from ~1 s to ~2 s; A's deadline passes at 1.5 s
            time.sleep(1.0)
        b.join(timeout=60)
        connections = slow.connections
    assert outcome["b"] == 206
    assert connections == 1  # B really did reuse A's connection


def test_a_probe_watches_a_kept_alive_connection_once(server: MediaServer) -> None:
    # Many requests of one probe on one kept-alive connection hold one watch on it, not one
    # descriptor per request until the probe ends.
    url = server.url("0-faststart.mp4")
    gate = UrlGate()
    gate.addresses("127.0.0.1")
    options = RemoteOptions()
    with ConnectionPools(per_host=1) as pools, Deadline(60) as deadline:
        session = open_session(options, gate, deadline, pools)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(40):
            with session.get(url, headers={"Range": "bytes=0-99"}, timeout=(5, 5)) as answer:
                assert answer.status_code == 206 and len(answer.content) == 100
        grown = len(os.listdir("/proc/self/fd")) - before
    assert server.connections == 1
    assert grown <= 2, f"{grown} descriptors more after 40 requests on one connection"


def test_a_host_whose_pool_was_retired_while_busy_stays_within_per_host(shapes: Path) -> None:
    # One pool kept, one connection a host: a slow read to A, then a read to B retires A's pool
    # while A's connection is out, then a second read to A. It must wait for A's one connection
    # (the retired pool serves again), not open a second one beside it.
    with (
        MediaServer(shapes, faults=Faults(latency_s=1.0)) as a,
        MediaServer(shapes) as b,
        ConnectionPools(per_host=1, max_pools=1) as pools,
    ):
        options = RemoteOptions(public_networks=PUBLIC_LOOPBACK, deadline_s=30)
        outcomes: list[object] = []

        def read_a() -> None:
            try:
                with fetch(
                    a.url("0-faststart.mp4"), gate=_gate(), options=options, pools=pools
                ) as source:
                    outcomes.append(source.info.status)
            except Exception as exc:  # the failure is the finding
                outcomes.append(f"{type(exc).__name__}: {exc}")

        first = threading.Thread(target=read_a)
        first.start()
        time.sleep(0.3)  # A's first read is in flight for ~1 s
        with fetch(b.url("0-faststart.mp4"), gate=_gate(), options=options, pools=pools) as source:
            assert source.info.status == 206
        second = threading.Thread(target=read_a)
        second.start()
        first.join(timeout=60)
        second.join(timeout=60)
        connections = a.connections
    assert outcomes == [206, 206]
    assert connections == 1
