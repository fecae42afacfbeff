"""The per-(source, account) claim on a shared PostgreSQL ledger: a row taken with INSERT ... ON
CONFLICT DO NOTHING, held by a lease its holder renews, taken over once the lease expired.

The claim is fenced: every take and take-over gives it a new `token` from a sequence, and every
write made on the claim's behalf checks the token in the same transaction (PgClaim.confirm right
before sending, PgClaim.held when recording the answer). A holder paused or cut off past its
lease thus learns, at its next write, that another process took over: it sends nothing more, and
what it was already billed for is recorded as contended.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import LedgerBusy, LedgerError, LedgerUnavailable
from .backend import Store
from .pg import PgStore
from .retry import retrying

# Lease times are the server's clock (now()), never ours: hosts need not agree on the time.
_TAKE = (
    "INSERT INTO claims (source_key, owner, host, pid, acquired_at, lease_until, token)"
    " VALUES (?, ?, ?, ?, now(), now() + make_interval(secs => ?), nextval('claim_tokens'))"
    " ON CONFLICT (source_key) DO NOTHING RETURNING token"
)
# Also re-takes our own row: after a connection lost with the INSERT's COMMIT, the retry finds it.
_TAKE_OVER = (
    "UPDATE claims SET owner = ?, host = ?, pid = ?, acquired_at = now(),"
    " lease_until = now() + make_interval(secs => ?), token = nextval('claim_tokens')"
    " WHERE source_key = ? AND (lease_until < now() OR owner = ?) RETURNING token"
)
# A claim whose lease ran out but that nobody took over is still ours: nobody else sent.
_RENEW = (
    "UPDATE claims SET lease_until = now() + make_interval(secs => ?)"
    " WHERE source_key = ? AND token = ? RETURNING token"
)
_HELD = "SELECT token FROM claims WHERE source_key = ? FOR UPDATE"


@dataclass
class PgClaim:
    key: str
    owner: str
    token: int
    lease_s: float
    lost: threading.Event

    def confirm(self, store: Store) -> bool:
        if self.lost.is_set():
            return False
        row = store.execute(_RENEW, (self.lease_s, self.key, self.token)).fetchone()
        return row is not None

    def held(self, store: Store) -> bool:
        row = store.execute(_HELD, (self.key,)).fetchone()
        return row is not None and row[0] == self.token


@contextmanager
def hold(
    store: PgStore,
    key: str,
    *,
    wait_s: float,
    lease_s: float,
    retry_s: float,
    label: str,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[PgClaim]:
    """Hold the claim on `key` (see Ledger.exclusive), waiting up to wait_s for it.

    While held, a thread renews the lease every lease_s / 3 on its own connection, reconnecting
    with back-off when it fails; a holder killed mid-request stops renewing, and lease_s later a
    waiter takes over (and finds the killed holder's attempt row).
    """
    host, pid = socket.gethostname(), os.getpid()
    owner = f"{host}:{pid}:{secrets.token_hex(8)}"
    deadline = time.monotonic() + wait_s
    told = False

    def take() -> tuple[int | None, tuple[str, int] | None]:
        taken = store.execute(_TAKE, (key, owner, host, pid, lease_s)).fetchone()
        if taken is None:
            taken = store.execute(_TAKE_OVER, (owner, host, pid, lease_s, key, owner)).fetchone()
        if taken is not None:
            return int(taken[0]), None
        holder = store.execute("SELECT host, pid FROM claims WHERE source_key = ?", (key,))
        row = holder.fetchone()
        return None, (None if row is None else (str(row[0]), int(row[1])))

    while True:
        token, holder = retrying(store, f"claiming {label}", take, within_s=retry_s)
        if token is not None:
            break
        who = f"pid {holder[1]} on {holder[0]}" if holder is not None else "another preflight"
        if time.monotonic() >= deadline:
            raise LedgerBusy(
                f"{who} holds the claim on {label} in {store.path}; gave up after {wait_s:g} s"
            )
        if on_wait is not None and not told:
            on_wait(f"waiting up to {wait_s:g} s for {who}, which holds the claim on {label}")
            told = True
        time.sleep(random.uniform(0.05, 0.2))  # jittered, so waiters do not move in step
    claim = PgClaim(key, owner, token, lease_s, threading.Event())
    renewer = _Renewer(store, claim)
    renewer.start()
    try:
        yield claim
    finally:
        renewer.stop()
        # A release that fails (the server gone) must not hide what happened inside: the claim
        # then lapses with its lease and is taken over.
        with contextlib.suppress(LedgerError):
            retrying(
                store,
                f"releasing {label}",
                lambda: store.execute(
                    "DELETE FROM claims WHERE source_key = ? AND token = ?", (key, token)
                ),
                within_s=min(retry_s, lease_s),
            )


class _Renewer(threading.Thread):
    """Renews the lease every lease_s / 3 on a connection of its own. A failure is never the
    end of it: it reconnects and tries again with back-off until stopped. If the token is gone
    (taken over), it marks the claim lost; confirm() then refuses to send."""

    def __init__(self, store: PgStore, claim: PgClaim) -> None:
        super().__init__(name=f"lease {claim.key}", daemon=True)
        self._store = store
        self._claim = claim
        self._every_s = claim.lease_s / 3
        self._stopped = threading.Event()
        self._own: PgStore | None = None

    def run(self) -> None:
        try:
            while not self._stopped.wait(self._every_s):
                if not self._renew():
                    self._claim.lost.set()
                    return
        finally:
            if self._own is not None:
                with contextlib.suppress(Exception):
                    self._own.close()

    def _renew(self) -> bool:
        """True while the claim is ours; retries until it knows, or until stopped."""
        delay = 0.05
        claim = self._claim
        while not self._stopped.is_set():
            try:
                if self._own is None:
                    self._own = self._store.again()
                with self._own.guard("renewing the claim"):
                    row = self._own.execute(
                        _RENEW, (claim.lease_s, claim.key, claim.token)
                    ).fetchone()
                return row is not None
            except LedgerUnavailable:
                if self._own is not None:
                    with contextlib.suppress(Exception):
                        self._own.close()
                self._own = None  # a new connection next round
            except LedgerError:
                pass  # the server refused this once (a statement timeout): try again
            self._stopped.wait(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 1.0)
        return True

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=30)
