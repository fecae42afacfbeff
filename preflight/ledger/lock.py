"""The ledger's per-(source, account) lock across processes: a row in its `locks` table, taken and
released through the ledger's Store, and taken over when its holder died or outlived stale_s.

The lock plays the PostgreSQL claim's part (claim.py): its row carries a random owner, checked in
the same transaction right before sending (SqliteClaim.confirm) and when recording the answer
(SqliteClaim.held), so a holder whose lock was taken over sends nothing more and records what it
was billed for as contended.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from ..errors import LedgerBusy
from .backend import Store as AnyStore
from .rows import parse_stamp, stamp, utc
from .store import SqliteStore as Store


@dataclass(frozen=True)
class SqliteClaim:
    key: str
    owner: str
    token: None = None

    def confirm(self, store: AnyStore) -> bool:
        return self.held(store)

    def held(self, store: AnyStore) -> bool:
        row = store.execute(
            "SELECT 1 FROM locks WHERE source_key = ? AND owner = ?", (self.key, self.owner)
        ).fetchone()
        return row is not None


@contextmanager
def hold(
    store: Store,
    source_key: str,
    *,
    wait_s: float,
    stale_s: float,
    label: str | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[SqliteClaim]:
    """Hold the lock on one key of the ledger (see Ledger.exclusive), waiting up to wait_s."""
    me = (os.getpid(), socket.gethostname())
    owner = f"{me[1]}:{me[0]}:{secrets.token_hex(8)}"
    label = label or source_key
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        with store.guard(f"locking {label}"):
            acquired_at, holder = _try_lock(store, source_key, me, owner, stale_s)
        if acquired_at is not None:
            break
        who = f"pid {holder[0]} on {holder[1]}"
        if time.monotonic() >= deadline:
            raise LedgerBusy(
                f"another preflight ({who}) holds the lock on "
                f"{label} in {store.path}; gave up after {wait_s:g} s"
            )
        if on_wait is not None and not told:
            on_wait(f"waiting up to {wait_s:g} s for {who}, which holds the lock on {label}")
            told = True
        time.sleep(random.uniform(0.02, 0.1))  # jittered, so waiters do not move in step
    try:
        yield SqliteClaim(source_key, owner)
    finally:
        # A ledger that cannot release (a full disk) must not hide what happened inside (a
        # session opened, or not recorded): the row is abandoned once this process is gone
        # (same host) or older than stale_s, and taken over then.
        with contextlib.suppress(sqlite3.Error):
            # Only our own row: a waiter may have judged us stale and taken over.
            store.execute(
                "DELETE FROM locks WHERE source_key = ? AND owner = ?", (source_key, owner)
            )


def _try_lock(
    store: Store, source_key: str, me: tuple[int, str], owner: str, stale_s: float
) -> tuple[str | None, tuple[int, str]]:
    now = utc(None)
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT pid, host, acquired_at FROM locks WHERE source_key = ?", (source_key,)
        ).fetchone()
        if row is not None and not _abandoned(row, me[1], now, stale_s):
            return None, (row["pid"], row["host"])
        acquired_at = stamp(now)
        conn.execute(
            "INSERT OR REPLACE INTO locks (source_key, pid, host, acquired_at, owner)"
            " VALUES (?, ?, ?, ?, ?)",
            (source_key, me[0], me[1], acquired_at, owner),
        )
    return acquired_at, me


def _abandoned(row: sqlite3.Row, my_host: str, now: datetime, stale_s: float) -> bool:
    try:
        age_s = (now - parse_stamp(row["acquired_at"])).total_seconds()
    except ValueError:
        return True  # not a time we wrote: nobody can be waiting on it
    if age_s > stale_s:
        return True
    return row["host"] == my_host and not _alive(row["pid"])


def _alive(pid: int) -> bool:
    # On Windows os.kill(pid, 0) would terminate the process: there we rely on stale_s alone.
    if pid <= 0 or sys.platform == "win32":
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: alive, owned by someone else
    return True
