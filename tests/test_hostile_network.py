"""The network around `check` under attack or strain (issue 21): a private URL named by the user
is refused before any connection, a stalling host never holds up the others, and a read timeout
is called one. Real loopback servers that count what reaches them; no mocked requests.

127.0.0.1 plays the public server (`public_networks`), 127.0.0.2 the private one (Linux routes
all of 127/8 to lo).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import preflight
from preflight import check_one, load_policy
from preflight.pipeline import CheckOptions
from preflight.probing.options import RemoteOptions
from preflight.testing.media_server import Faults, MediaServer

from .conftest import FIXTURES, preflight_script, run_cli

MEDIA = FIXTURES / "media"
CLIP = "fmt_mp4_h264.mp4"
POLICY = load_policy()
PUBLIC_LOOPBACK = ("127.0.0.1/32",)


@pytest.fixture(scope="module")
def private_server() -> Iterator[MediaServer]:
    with MediaServer(MEDIA, host="127.0.0.2") as running:
        yield running


@pytest.fixture
def private(private_server: MediaServer) -> MediaServer:
    private_server.faults = Faults()
    private_server.reset_log()
    return private_server


def _options(*, allow_private: bool = False, **remote: Any) -> CheckOptions:
    settings: dict[str, Any] = {"public_networks": PUBLIC_LOOPBACK, **remote}
    return CheckOptions(allow_private_urls=allow_private, remote=RemoteOptions(**settings))


# -- item 1: the URL the user names is judged like a redirect hop -------------------------------


def test_check_one_never_connects_to_a_private_url(private: MediaServer) -> None:
    url = private.url(CLIP)
    result = check_one(url, POLICY, options=_options())
    assert result.verdict == "reject" and result.facts is None and result.remote is None
    assert [v.rule for v in result.violations] == ["url.public"]
    assert "did not connect" in result.violations[0].message
    assert private.connections == 0 and private.requests == []  # not a byte, not a SYN-ACK


def test_the_library_batch_never_connects_to_a_private_url(private: MediaServer) -> None:
    urls = [private.url(CLIP), f"{private.url(CLIP)}?again=1"]
    results = preflight.check(urls, POLICY, options=_options())
    assert [r.verdict for r in results] == ["reject", "reject"]
    assert private.connections == 0


def test_fetch_itself_refuses_a_private_url_unconnected(private: MediaServer) -> None:
    # Every caller of the remote reader, not only the check, gets the first URL judged.
    from preflight.errors import UsageError
    from preflight.policy.url import UrlGate
    from preflight.probing.remote import fetch

    with (
        pytest.raises(UsageError, match="nothing was connected"),
        fetch(private.url(CLIP), gate=UrlGate()),
    ):
        pass
    assert private.connections == 0


def test_allow_private_urls_does_connect(private: MediaServer) -> None:
    # The same server counts connections: the zero above is the gate's, not a deaf server's.
    result = check_one(private.url(CLIP), POLICY, options=_options(allow_private=True))
    assert result.verdict == "pass", result.error
    assert private.connections >= 1 and private.bytes_sent > 0


@pytest.mark.parametrize("form", [["--json"], []], ids=["json", "human"])
def test_cli_never_connects_to_a_private_url(private: MediaServer, form: list[str]) -> None:
    done = run_cli("check", *form, private.url(CLIP), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "url.public" in done.stdout and "did not connect" in done.stdout
    assert private.connections == 0


# -- item 9: a read timeout is reported as one ---------------------------------------------------


def test_a_server_that_accepts_and_says_nothing_is_a_read_timeout(private: MediaServer) -> None:
    private.faults = Faults(latency_s=30)  # connected, then silence (ended by the server's stop)
    options = _options(allow_private=True, read_timeout_s=0.5, deadline_s=20)
    result = check_one(private.url(CLIP), POLICY, options=options)
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "timeout"
    assert "read timeout" in result.error.message
    assert "could not connect" not in result.error.message
    assert "deadline" not in result.error.message
    assert private.connections == 1  # it did connect: saying otherwise sends the user astray


def test_cli_reports_a_read_timeout_as_one(private: MediaServer) -> None:
    private.faults = Faults(latency_s=30)
    done = run_cli(
        "check", "--json", "--allow-private-urls", "--read-timeout", "0.5", private.url(CLIP),
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["kind"] == "timeout"
    assert "read timeout" in result["error"]["message"]
    assert "could not connect" not in result["error"]["message"]


# -- item 6: one stalling host never holds up the others ---------------------------------------


class _StallingServer(ThreadingHTTPServer):
    """Holds every request until `release` is set (then 404), counting what is in flight."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _StallingHandler)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.connections = 0

    def url(self, name: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/{name}"


class _StallingHandler(BaseHTTPRequestHandler):
    server: _StallingServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            self.server.release.wait(timeout=120)
            with suppress(OSError):
                self.send_error(404)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stalling() -> Iterator[_StallingServer]:
    server = _StallingServer("127.0.0.3")
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_healthy_hosts_finish_while_a_stalling_host_holds_its_bound(
    stalling: _StallingServer, private: MediaServer, tmp_path: Path
) -> None:
    stalls = [stalling.url(f"stall-{n}.mp4") for n in range(100)]
    healthy = [f"{private.url(CLIP)}?n={n}" for n in range(20)]
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(stalls + healthy) + "\n")
    cli = subprocess.Popen(
        [
            preflight_script(), "check", "--jsonl", "--no-cache", "--allow-private-urls",
            "--deadline", "20", "--per-host", "32", "--from", str(listed),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert cli.stdout is not None
    order: list[str] = []
    try:
        # --jsonl prints each result as it finishes: read until the healthy host's 20 are in.
        # The stalling host answers nothing until released, so (before its 20 s deadline) only
        # the healthy host's results can arrive; with the old scheduling its URLs waited behind
        # 64 workers stuck on the stalling host, and the first results were its timeouts.
        for line in cli.stdout:
            source = json.loads(line)["source"]
            order.append("healthy" if source in healthy else "stalling")
            if order.count("healthy") == len(healthy) or order[-1] == "stalling":
                break
        held_while_healthy_ran = stalling.most_in_flight
        stalling.release.set()
        rest, err = cli.communicate(timeout=120)
    finally:
        cli.kill()
    assert "Traceback" not in err, err
    assert order == ["healthy"] * len(healthy), order
    assert 1 <= held_while_healthy_ran <= 32  # the stalling host never had more than its bound
    results = [json.loads(line) for line in rest.splitlines()]
    assert len(results) == len(stalls)  # and every stalling URL was still checked, once
    assert {r["source"] for r in results} == set(stalls)
    assert cli.returncode == 1  # the held URLs answered 404 once released: url.status rejects


def test_host_turns_hold_back_only_a_host_at_its_bound() -> None:
    from preflight.batch import HostTurns

    sources = [
        "http://a.test/1", "http://a.test:80/2", "http://A.test/3", "https://a.test/4",
        "http://b.test/1", "local.mp4", "http://a.test/5",
    ]  # fmt: skip
    turns = HostTurns(sources, per_host=2)
    started = [turns.next() for _ in range(5)]
    # a.test:80 has its 2; its 3rd waits while https://a.test (another pool), b.test and the
    # file go; then nothing is left that may start.
    assert started == [0, 1, 3, 4, 5]
    assert turns.next() is None
    turns.finished(4)  # b.test's room frees nothing for a.test:80
    assert turns.next() is None
    turns.finished(0)  # a.test:80 has room: its held-back sources go, in input order
    assert [turns.next(), turns.next()] == [2, None]
    turns.finished(1)
    assert [turns.next(), turns.next()] == [6, None]
