"""The per-source claim on a shared PostgreSQL ledger: a row per source key, taken with INSERT ...
ON CONFLICT DO NOTHING, held by a lease its holder renews, taken over once the lease expired.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import LedgerBusy, LedgerError
from .pg import PgStore

# Lease times are the server's clock (now()), never ours: hosts need not agree on the time.
_TAKE = (
    "INSERT INTO claims (source_key, owner, host, pid, acquired_at, lease_until)"
    " VALUES (?, ?, ?, ?, now(), now() + make_interval(secs => ?))"
    " ON CONFLICT (source_key) DO NOTHING RETURNING owner"
)
_TAKE_OVER = (
    "UPDATE claims SET owner = ?, host = ?, pid = ?, acquired_at = now(),"
    " lease_until = now() + make_interval(secs => ?)"
    " WHERE source_key = ? AND lease_until < now() RETURNING owner"
)
_RENEW = (
    "UPDATE claims SET lease_until = now() + make_interval(secs => ?)"
    " WHERE source_key = ? AND owner = ?"
)


@contextmanager
def hold(store: PgStore, source_key: str, *, wait_s: float, lease_s: float) -> Iterator[None]:
    """Hold the claim on one source (see Ledger.exclusive), waiting up to wait_s for it.

    While held, a thread renews the lease every lease_s / 3 on its own connection, so a long
    request keeps it; a holder killed mid-request stops renewing, and lease_s later a waiter
    takes over (and sees the killed holder's attempt row).
    """
    host, pid = socket.gethostname(), os.getpid()
    owner = f"{host}:{pid}:{secrets.token_hex(8)}"
    deadline = time.monotonic() + wait_s
    while True:
        with store.guard(f"claiming {source_key}"):
            taken = store.execute(_TAKE, (source_key, owner, host, pid, lease_s)).fetchone()
            if taken is None:
                taken = store.execute(
                    _TAKE_OVER, (owner, host, pid, lease_s, source_key)
                ).fetchone()
            holder = None
            if taken is None:
                holder = store.execute(
                    "SELECT host, pid FROM claims WHERE source_key = ?", (source_key,)
                ).fetchone()
        if taken is not None:
            break
        if time.monotonic() >= deadline:
            who = f"pid {holder[1]} on {holder[0]}" if holder is not None else "another preflight"
            raise LedgerBusy(
                f"{who} holds the claim on {source_key} in {store.path}; gave up after {wait_s:g} s"
            )
        time.sleep(random.uniform(0.05, 0.2))  # jittered, so waiters do not move in step
    renewer = _Renewer(store, source_key, owner, lease_s)
    renewer.start()
    try:
        yield
    finally:
        renewer.stop()
        # A release that fails (the server gone) must not hide what happened inside: the claim
        # then lapses with its lease and is taken over.
        with contextlib.suppress(LedgerError), store.guard(f"releasing {source_key}"):
            store.execute(
                "DELETE FROM claims WHERE source_key = ? AND owner = ?", (source_key, owner)
            )


class _Renewer(threading.Thread):
    def __init__(self, store: PgStore, source_key: str, owner: str, lease_s: float) -> None:
        super().__init__(name=f"lease {source_key}", daemon=True)
        self._store = store
        self._args = (lease_s, source_key, owner)
        self._every_s = lease_s / 3
        self._stopped = threading.Event()
        self._own: PgStore | None = None

    def run(self) -> None:
        try:
            self._own = self._store.again()
            while not self._stopped.wait(self._every_s):
                self._own.execute(_RENEW, self._args)
        except Exception:
            # The server is gone (or anything else): the lease lapses as if we had died, and
            # init's request, already out, is never disturbed by it.
            return
        finally:
            if self._own is not None:
                with contextlib.suppress(Exception):
                    self._own.close()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=30)
