"""How every ledger operation survives a lost connection: reconnect and try again with back-off
until a bounded time has passed ($PREFLIGHT_LEDGER_RETRY_S, default RETRY_S), then fail.

Each operation retried here is written to be idempotent (an attempt carries a nonce, a session
is inserted ON CONFLICT DO NOTHING, a claim is re-taken by its owner), since a connection lost
after COMMIT reached the server makes us run a committed operation again.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import ClaimLost, LedgerError, LedgerUnavailable
from .backend import Store, open_store
from .knobs import env_seconds

RETRY_S = 30.0
_FIRST_DELAY_S = 0.05
_MAX_DELAY_S = 2.0

T = TypeVar("T")


def retry_s() -> float:
    """$PREFLIGHT_LEDGER_RETRY_S, else RETRY_S."""
    return env_seconds("PREFLIGHT_LEDGER_RETRY_S", RETRY_S)


def open_retrying(path: str | Path, within_s: float) -> Store:
    """The store, opened again with back-off while its server cannot be reached (restarting,
    say) for up to within_s: a refused password or a bad DSN fails at once."""
    deadline = time.monotonic() + within_s
    delay = 0.1
    while True:
        try:
            return open_store(path)
        except LedgerUnavailable:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY_S)


def retrying(
    store: Store,
    doing: str,
    operation: Callable[[], T],
    *,
    within_s: float,
    any_error: bool = False,
    deadline: float | None = None,
) -> T:
    """`operation()` under the store's guard; a lost connection (LedgerUnavailable) is retried
    on a new one until `within_s` from now (or the monotonic `deadline`) has passed. With
    `any_error`, any LedgerError but ClaimLost is retried too (recording a billed session: a
    full disk or a locked file may clear)."""
    end = deadline if deadline is not None else time.monotonic() + within_s
    delay = _FIRST_DELAY_S
    while True:
        try:
            with store.guard(doing):
                return operation()
        except ClaimLost:
            raise
        except LedgerError as exc:
            lost = isinstance(exc, LedgerUnavailable)
            if not (lost or any_error) or time.monotonic() + delay > end:
                raise
        time.sleep(random.uniform(delay / 2, delay))  # jittered: many waiters, one server
        delay = min(delay * 2, _MAX_DELAY_S)
        if lost:
            # A failed reconnect is the next round's failure: the loop's deadline bounds it.
            with contextlib.suppress(LedgerError):
                store.reconnect()
