"""What the billing (test_money_*) tests share: a "host" (its own HOME, the shared ledger, short
leases and ledger bounds through the documented environment knobs), `preflight init` as a real
process, a loopback TCP proxy that can go silent, and the invariant each test checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflight.ledger import Ledger
from preflight.testing import Sandbox

from .conftest import preflight_script

KEY = "sk-test-SECRET-money-0b5e"
LEASE_S = 1.5  # a claim outlives its holder's last renewal this long
# The short bounds every process of these tests gets: leases, how long a newcomer waits for a
# holder, how long one ledger call may take, how long a ledger is retried after a billed answer.
KNOBS = {
    "PREFLIGHT_LEASE_S": f"{LEASE_S:g}",
    "PREFLIGHT_CLAIM_WAIT_S": "30",
    "PREFLIGHT_LEDGER_READ_TIMEOUT_S": "2",
    "PREFLIGHT_LEDGER_RETRY_S": "30",
}


def video(n: int) -> dict[str, str]:
    """The body of source n: a video_id + task_id source (no probe: cheap for many processes)."""
    return {"video_id": f"78491234734494{n:04d}", "task_id": "9"}


def host_env(
    root: Path, name: str, ledger: str, api: Sandbox, *, key: str = KEY, **extra: str
) -> dict[str, str]:
    """The environment of one "host": its own HOME and cwd, the shared ledger, one account."""
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    return {
        **base,
        **KNOBS,
        "HOME": str(home),
        "PREFLIGHT_LEDGER": ledger,
        "PREFLIGHT_API_BASE": api.base_url,
        "COMETAPI_KEY": key,
        **extra,
    }


@dataclass
class Init:
    """One `preflight init --json` running as its own process."""

    body: dict[str, str]
    env: dict[str, str]
    prefix: list[str] = field(default_factory=list)  # e.g. faketime before the script
    proc: subprocess.Popen[str] | None = None
    out: dict[str, Any] | None = None
    stderr: str = ""

    def start(self, *args: str) -> Init:
        command = [preflight_script(), "init", "--json", *_body_args(self.body), *args]
        self.proc = subprocess.Popen(
            [*self.prefix, *command],
            env=self.env,
            cwd=self.env["HOME"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self

    def wait(self, timeout: float = 60) -> Init:
        assert self.proc is not None
        try:
            stdout, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, self.stderr = self.proc.communicate()
            raise AssertionError(f"init hung past {timeout:g} s: {self.stderr}") from None
        assert "Traceback" not in self.stderr, self.stderr
        assert KEY not in stdout + self.stderr
        self.out = json.loads(stdout) if stdout.strip() else None
        return self

    def run(self, *args: str, timeout: float = 60) -> Init:
        return self.start(*args).wait(timeout)

    @property
    def code(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    @property
    def kind(self) -> str | None:
        error = (self.out or {}).get("error")
        return error.get("kind") if isinstance(error, dict) else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.communicate(timeout=30)


def _body_args(body: dict[str, str]) -> list[str]:
    return ["--video-id", body["video_id"], "--task-id", body["task_id"]]


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def assert_billed_once_and_known(
    ledger: str, apis: list[Sandbox], bodies: list[dict[str, str]], inits: list[Init]
) -> None:
    """The invariant: at most one POST per (source, account) arrived at the stand-ins, and
    nothing billed is missing from the ledger: every session a process printed is recorded, and
    every session a stand-in opened is recorded or left evidence (an unsettled attempt)."""
    for api in apis:
        for body in bodies:
            assert api.posts(body) <= 1, f"{api.posts(body)} POSTs for {body} at {api.base_url}"
    with Ledger(ledger) as book:
        recorded = {row.session_id for row in book.sessions()}
        attempts = book.attempts()
    printed = {i.out["session_id"] for i in inits if i.out and i.out.get("session_id")}
    assert printed <= recorded, f"printed but not in the ledger: {printed - recorded}"
    unsettled = {json.dumps(a.request_body, sort_keys=True) for a in attempts if not a.session_id}
    for api in apis:
        for session_id, opened in api.sessions.items():
            known = session_id in recorded
            evidence = json.dumps(opened["body"], sort_keys=True) in unsettled
            assert known or evidence, f"billed session {session_id} left no trace in the ledger"


class SilentProxy:
    """A loopback TCP proxy to `upstream` that can go silent: freeze() stops forwarding in both
    directions while every connection stays open (no RST, no FIN), as a partition or a frozen
    middlebox would; thaw() resumes. New connections are accepted, and held, while frozen.
    silence_held() silences for good only the connections open now (a new one is served), and
    refuse_new() closes the listener."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._running = threading.Event()
        self._running.set()  # cleared while frozen
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._silenced: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def silence_held(self) -> None:
        with self._lock:
            self._silenced.update(self._sockets)

    def refuse_new(self) -> None:
        # shutdown, not only close: a close leaves a listener that the accept() thread holds.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def close(self) -> None:
        self._closed.set()
        self._running.set()
        self.refuse_new()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        while not self._running.wait(0.05):  # frozen: the client waits, connected, unanswered
            if self._closed.is_set():
                return
        try:
            server = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if not self._running.wait(0.05):
                    continue  # frozen: leave the bytes in the kernel's buffers
                if src in self._silenced:
                    self._closed.wait(0.05)  # silenced for good: the same, for this one
                    continue
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready or not self._running.is_set() or src in self._silenced:
                    continue  # silenced while select() waited: the bytes stay where they are
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except (OSError, ValueError):  # ValueError: select() on a socket close() closed
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)
