"""The ledger: every attempt and every session init-selection opened, and the probe cache.

`Ledger(path)` opens (or creates) one: a SQLite file, or a postgresql:// DSN shared between
machines; `default_path()` is where it lives unless told otherwise. backend.py picks the store
and says what both give; dsn.py tells a DSN from a path and masks its password; store.py owns
the SQLite file, pg.py the PostgreSQL connection and schema, watchdog.py its client-side read
bound, retry.py reconnecting with back-off, knobs.py the waits the environment sets; book.py
the Ledger's writes on either, reads.py its reads, queries.py their SQL, manual.py a session
recorded by hand; lock.py the SQLite per-(source, account) lock, claim.py the PostgreSQL claim
with its lease and fencing token; rows.py the typed rows and the one stamp format.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> module that defines it. Loaded on first use (PEP 562), so the probe cache, which needs
# backend.py and rows.py only, does not load the Ledger's locks (socket, datetime, random).
_EXPORTS = {
    "AttemptRow": "rows",
    "AttemptState": "rows",
    "Ledger": "book",
    "SessionRow": "rows",
    "default_path": "store",
}

__all__ = ["AttemptRow", "AttemptState", "Ledger", "SessionRow", "default_path"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .book import Ledger
    from .rows import AttemptRow, AttemptState, SessionRow
    from .store import default_path
