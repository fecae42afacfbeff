"""A read bound on the PostgreSQL ledger's socket that the client enforces itself.

statement_timeout is the server's: it cannot end a call whose path went silent (a partition, a
proxy that stops forwarding but keeps the TCP connection), and TCP keepalives and
tcp_user_timeout only see a peer that stops acknowledging. One thread per process watches every
call in flight and shuts the socket of one that outlived its bound down, so libpq's wait ends in
an error (the store then reconnects) instead of hanging.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_TICK_S = 0.1


class Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, int]] = {}  # ticket -> (deadline, fd)
        self._tickets = itertools.count()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def bound(self, fd: int, seconds: float) -> Iterator[None]:
        """Shut `fd` down if the block inside is still running `seconds` from now."""
        with self._lock:
            ticket = next(self._tickets)
            self._armed[ticket] = (time.monotonic() + seconds, fd)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ledger watchdog", daemon=True
                )
                self._thread.start()
        self._wake.set()
        try:
            yield
        finally:
            # Under the lock, so the watchdog never shuts an fd down once its call is over (the
            # number may be reused by another socket at once).
            with self._lock:
                self._armed.pop(ticket, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                idle = not self._armed
                now = time.monotonic()
                for ticket, (deadline, fd) in list(self._armed.items()):
                    if now >= deadline:
                        _shut(fd)
                        del self._armed[ticket]
            if idle:
                self._wake.wait(5.0)
                self._wake.clear()
            else:
                time.sleep(_TICK_S)


def _shut(fd: int) -> None:
    # A duplicate of the descriptor shares the socket: shutting it down ends libpq's read on the
    # original too; closing the duplicate leaves the original for psycopg to close.
    with contextlib.suppress(OSError):
        dup = socket.socket(fileno=os.dup(fd))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


WATCHDOG = Watchdog()
