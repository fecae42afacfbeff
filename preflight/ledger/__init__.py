"""The ledger: every attempt and every session init-selection opened, and the probe cache.

`Ledger(path)` opens (or creates) one: a SQLite file, or a postgresql:// DSN shared between
machines; `default_path()` is where it lives unless told otherwise. backend.py picks the store
and says what both give; store.py owns the SQLite file, pg.py the PostgreSQL connection and
schema; book.py the Ledger on either; lock.py the SQLite per-source lock, claim.py the
PostgreSQL claim with its lease; rows.py the typed rows and the one stamp format.
"""

from __future__ import annotations

from .book import Ledger
from .rows import AttemptRow, AttemptState, SessionRow
from .store import default_path

__all__ = ["AttemptRow", "AttemptState", "Ledger", "SessionRow", "default_path"]
