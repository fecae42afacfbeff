"""A probe's wall-clock deadline and the one watchdog thread that enforces every live one.

urllib3's read timeout restarts with every byte, so only a socket shut from outside ends a drip;
transport.py tracks each socket a probe uses here.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import socket
import threading
import time
from types import TracebackType

from ..errors import NetworkError

SHORTEST_TIMEOUT_S = 0.01  # a socket timeout of 0 would mean non-blocking, not "no time left"


class Deadline:
    """One wall-clock budget for a source. Use as a context manager: while inside, the watchdog
    thread shuts down every socket the probe uses once the time is up.

    urllib3's read timeout restarts with every byte received, so a server sending one byte a
    second never trips it; only closing the socket from outside ends such a read.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # our own dup()s, so their fds are never reused
        self._fired = False
        self._watched = False

    def __enter__(self) -> Deadline:
        _WATCHDOG.watch(self)
        self._watched = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._watched:
            self._watched = False
            _WATCHDOG.forget(self)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._ends

    def error(self) -> NetworkError:
        return NetworkError(
            f"the source took longer than the {self.seconds:g} s deadline "
            "(the server sends too slowly, or stalls)",
            kind="timeout",
        )

    def check(self) -> None:
        """Raise the deadline's NetworkError (kind timeout) if the time is up."""
        if self.expired:
            raise self.error()

    def limit(self, timeout: float | None) -> float:
        """`timeout` shortened to the time left (None: the time left)."""
        left = max(self.remaining(), SHORTEST_TIMEOUT_S)
        return left if timeout is None else min(timeout, left)

    def timeouts(self, timeout: tuple[float, float]) -> tuple[float, float]:
        """The (connect, read) `timeout` for the next request, neither past the deadline."""
        return (self.limit(timeout[0]), self.limit(timeout[1]))

    def track(self, sock: socket.socket) -> socket.socket:
        """Watch a connection's socket while this probe uses it: the watchdog shuts it down when
        the time is up. Returns the watch, for `untrack` when the connection goes back to the
        pool (a connection another probe takes next must not die at this probe's deadline)."""
        # A dup shares the connection, and its fd stays ours even after urllib3 closes the
        # original (or TLS wraps it, which moves the fd to a new socket object). By fd, since an
        # SSLSocket (a reused TLS connection) refuses dup().
        watched = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            fired = self._fired
            self._sockets.append(watched)
        if fired:
            _shut(watched)
        return watched

    def untrack(self, watched: socket.socket) -> None:
        """Stop watching (and release) a socket `track` returned; the connection stays open."""
        with self._lock, contextlib.suppress(ValueError):
            self._sockets.remove(watched)
        watched.close()

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


class _Watchdog:
    """One thread for every live Deadline of the process, instead of a thread per probe: starting
    a thread costs a GIL hand-off, which a batch of 64 busy workers paid twice per URL. It runs
    while any Deadline is live and is gone (joined) when the last one ends."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._queue: list[tuple[float, int, Deadline]] = []  # a heap by end time
        self._live: set[Deadline] = set()  # the deadlines inside their `with`
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            self._live.add(deadline)
            heapq.heappush(self._queue, (deadline._ends, id(deadline), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="preflight-deadline", daemon=True
                )
                self._thread.start()
            else:
                self._wake.notify()

    def forget(self, deadline: Deadline) -> None:
        with self._wake:
            self._live.discard(deadline)
            done = None
            if not self._live:
                done, self._thread, self._queue = self._thread, None, []
                self._wake.notify()
        if done is not None and done is not threading.current_thread():
            done.join()

    def _run(self) -> None:
        me = threading.current_thread()
        with self._wake:
            while self._thread is me:
                queue = self._queue
                while queue and queue[0][2] not in self._live:
                    heapq.heappop(queue)  # ended before its time was up
                if not queue:
                    self._wake.wait()
                    continue
                wait = queue[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                _, _, deadline = heapq.heappop(queue)
                deadline._fire()


_WATCHDOG = _Watchdog()


def _shut(sock: socket.socket) -> None:
    # shutdown, not close: it wakes a recv blocked in another thread, which close does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
