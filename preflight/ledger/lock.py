"""The ledger's per-source lock across processes: a row in its `locks` table, taken and released
through the ledger's Store, and taken over when its holder died or outlived stale_s.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from ..errors import LedgerBusy
from .rows import parse_stamp, stamp, utc
from .store import SqliteStore as Store


@contextmanager
def hold(store: Store, source_key: str, *, wait_s: float, stale_s: float) -> Iterator[None]:
    """Hold the lock on one source of the ledger (see Ledger.exclusive), waiting up to wait_s."""
    me = (os.getpid(), socket.gethostname())
    deadline = time.monotonic() + wait_s
    while True:
        with store.guard(f"locking {source_key}"):
            acquired_at, holder = _try_lock(store, source_key, me, stale_s)
        if acquired_at is not None:
            break
        if time.monotonic() >= deadline:
            raise LedgerBusy(
                f"another preflight (pid {holder[0]} on {holder[1]}) holds the lock on "
                f"{source_key} in {store.path}; gave up after {wait_s:g} s"
            )
        time.sleep(random.uniform(0.02, 0.1))  # jittered, so waiters do not move in step
    try:
        yield
    finally:
        # A ledger that cannot release (a full disk) must not hide what happened inside (a
        # session opened, or not recorded): the row is abandoned once this process is gone
        # (same host) or older than stale_s, and taken over then.
        with contextlib.suppress(sqlite3.Error):
            # Only our own row: a waiter may have judged us stale and taken over.
            store.execute(
                "DELETE FROM locks WHERE source_key = ? AND pid = ? AND host = ?"
                " AND acquired_at = ?",
                (source_key, me[0], me[1], acquired_at),
            )


def _try_lock(
    store: Store, source_key: str, me: tuple[int, str], stale_s: float
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
            "INSERT OR REPLACE INTO locks (source_key, pid, host, acquired_at) VALUES (?, ?, ?, ?)",
            (source_key, me[0], me[1], acquired_at),
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
