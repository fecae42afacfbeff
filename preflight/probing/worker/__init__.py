"""The pool of warm worker processes: libmediainfo (and, for thumbnails, PyAV's FFmpeg) never
parses untrusted bytes in this process.

Each worker (child.py) runs under an address-space bound and every job under a deadline; one that
overruns is killed with its process group and replaced on the next job. Thread-safe: N batch
threads check out N workers. Workers exit when the parent closes their stdin or dies.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import ProbeError
from ..limits import ProbeLimits
from ..snapshot import Snapshot

_FRAME = struct.Struct(">I")
_CHILD = str(Path(__file__).with_name("child.py"))
# Starting a worker (Python, pymediainfo, libmediainfo) takes ~0.1 s; on a loaded machine more.
# It is waited for apart from the parse deadline, which then measures the parse alone.
STARTUP_TIMEOUT_S = 30.0
MAX_IDLE = 8  # warm workers kept between jobs; more are started when more threads ask at once


# What each kind of worker runs, for messages: the child loads one library, never both.
_NAMES = {"mediainfo": "MediaInfo", "thumbnail": "the thumbnail decoder"}
_LIBRARIES = {"mediainfo": "libmediainfo", "thumbnail": "FFmpeg"}


class _Worker:
    def __init__(self, memory_bytes: int, kind: str) -> None:
        self.memory_bytes = memory_bytes
        self.kind = kind
        # Our own script by path (not -m preflight...): the child imports neither preflight
        # nor anything else it does not need. No preexec_fn: the child bounds itself.
        self.proc = subprocess.Popen(
            [sys.executable, "-s", _CHILD, str(memory_bytes), kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            # One malloc arena: each extra thread's arena reserves 64 MiB of address space,
            # which would count against the bound and blur the peak the worker judges by.
            env={**os.environ, "MALLOC_ARENA_MAX": "1"},
        )
        self.fresh = True

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, header: dict[str, Any], payload: bytes | None) -> None:
        assert self.proc.stdin is not None
        data = json.dumps(header).encode()
        frames = _FRAME.pack(len(data)) + data
        if payload is not None:
            frames += _FRAME.pack(len(payload)) + payload
        self.proc.stdin.write(frames)
        self.proc.stdin.flush()

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next answer, or None when the worker died; TimeoutError past `deadline`."""
        header = self._read_exact(_FRAME.size, deadline)
        if header is None:
            return None
        body = self._read_exact(_FRAME.unpack(header)[0], deadline)
        if body is None:
            return None
        answer: dict[str, Any] = json.loads(body)
        return answer

    def _read_exact(self, count: int, deadline: float) -> bytes | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        # poll, not select: select fails on descriptors past 1024, which a busy batch may reach.
        waiter = select.poll()
        waiter.register(fd, select.POLLIN)
        parts: list[bytes] = []
        got = 0
        while got < count:
            left = deadline - time.monotonic()
            if left <= 0 or not waiter.poll(max(1, int(left * 1000))):
                raise TimeoutError
            chunk = os.read(fd, count - got)
            if not chunk:
                return None
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def kill(self) -> None:
        # The whole group: libmediainfo starts no children today, but nothing may outlive us.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reap()

    def close(self) -> None:
        """Ask an idle worker to leave (stdin EOF); kill it if it does not, promptly."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()

    def describe_death(self) -> str:
        code = self.proc.wait()
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"


class Pool:
    """Warm workers, keyed by kind and memory bound; checked out by one thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self.jobs: Counter[str] = Counter()  # jobs sent, by kind (for tests and diagnostics)

    def pids(self) -> list[int]:
        """Process ids of the workers alive now (for tests and diagnostics)."""
        with self._lock:
            return [w.pid for w in self._all if w.alive()]

    def run(
        self,
        header: dict[str, Any],
        payload: bytes | None,
        limits: ProbeLimits,
        kind: str = "mediainfo",
    ) -> str:
        """Send one job to a worker of `kind` and return its text; raise ProbeError otherwise."""
        with self._lock:
            self.jobs[kind] += 1
        worker = self._checkout(limits, kind)
        try:
            answer = self._ask(worker, header, payload, limits)
        except BaseException:
            self._discard(worker)  # a half-done job leaves the worker in an unknown state
            raise
        if answer.get("exit") or "text" not in answer:
            self._discard(worker)
        else:
            self._checkin(worker)
        if "text" in answer:
            return str(answer["text"])
        failed = f"{_NAMES[kind]} failed"
        raise ProbeError(str(answer.get("message", failed)), kind=answer.get("kind"))

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = list(self._all), set(), []
        for worker in workers:
            worker.close()

    def _ask(
        self, worker: _Worker, header: dict[str, Any], payload: bytes | None, limits: ProbeLimits
    ) -> dict[str, Any]:
        if worker.fresh:
            worker.fresh = False
            ready = self._await(worker, time.monotonic() + max(STARTUP_TIMEOUT_S, limits.timeout_s))
            if not ready.get("ready"):
                raise ProbeError(str(ready.get("message")), kind=ready.get("kind"))
        try:
            worker.send(header, payload)
        except OSError:
            raise self._died(worker, limits) from None
        return self._await(worker, time.monotonic() + limits.timeout_s, limits)

    def _await(
        self, worker: _Worker, deadline: float, limits: ProbeLimits | None = None
    ) -> dict[str, Any]:
        try:
            answer = worker.receive(deadline)
        except TimeoutError:
            worker.kill()
            seconds = limits.timeout_s if limits else STARTUP_TIMEOUT_S
            raise ProbeError(
                f"{_NAMES[worker.kind]} took longer than {seconds:g} s (a hostile or broken "
                "index?); raise --probe-timeout if this file is real",
                kind="timeout",
            ) from None
        if answer is None:
            raise self._died(worker, limits)
        return answer

    def _died(self, worker: _Worker, limits: ProbeLimits | None) -> ProbeError:
        worker.kill()
        bound = f"{worker.memory_bytes >> 20} MiB"
        return ProbeError(
            f"{_NAMES[worker.kind]}'s worker {worker.describe_death()} while reading it (over "
            f"its {bound} memory bound, or a crash in {_LIBRARIES[worker.kind]})",
            kind="resource_limit",
        )

    def _checkout(self, limits: ProbeLimits, kind: str) -> _Worker:
        with self._lock:
            for worker in list(self._idle):
                if worker.kind != kind or worker.memory_bytes != limits.memory_bytes:
                    continue
                if not worker.alive():  # reaped below
                    continue
                self._idle.remove(worker)
                return worker
            dead = [w for w in self._idle if not w.alive()]
            for worker in dead:
                self._idle.remove(worker)
                self._all.discard(worker)
        for worker in dead:
            worker.kill()  # reap it
        worker = _Worker(limits.memory_bytes, kind)
        with self._lock:
            self._all.add(worker)
        return worker

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(worker)
                return
            self._all.discard(worker)
        worker.close()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()


POOL = Pool()
atexit.register(POOL.close)


def parse(header: dict[str, Any], limits: ProbeLimits, snapshot: Snapshot | None = None) -> str:
    """MediaInfo's text output for a local path (in `header`) or a snapshot of remote bytes."""
    payload = None
    if snapshot is not None:
        header = {
            **header,
            "size": snapshot.size,
            "readable_end": snapshot.end,
            "chunks": [[offset, len(data)] for offset, data in snapshot.chunks],
        }
        payload = b"".join(data for _, data in snapshot.chunks)
    return POOL.run(header, payload, limits)


def thumbnail(path: str, box: tuple[int, int], limits: ProbeLimits) -> bytes:
    """A JPEG (at most 8 KiB) of the first keyframe of a local video, fit inside `box`.

    Decoded by a thumbnail worker under `limits`; ProbeError (with its kind) if it cannot be.
    """
    import base64

    header = {"path_hex": os.fsencode(path).hex(), "box": list(box)}
    return base64.b64decode(POOL.run(header, None, limits, kind="thumbnail"))


def streams(path: str, limits: ProbeLimits, *, max_pixels: int) -> str:
    """The streams of a local video as ffprobe's -show_entries JSON would give them (what fix
    plans with), read by PyAV in a thumbnail worker under `limits`, no frame over `max_pixels`
    decoded; ProbeError otherwise."""
    header = {"op": "streams", "path_hex": os.fsencode(path).hex(), "max_pixels": max_pixels}
    return POOL.run(header, None, limits, kind="thumbnail")
