"""The ledger: every attempt and every session init-selection opened, and the probe cache (SQLite).

`Ledger(path)` opens (or creates) one; `default_path()` is where it lives unless told otherwise.
store.py owns the file and its connection, book.py the Ledger on it, lock.py the per-source lock,
rows.py the typed rows and the one stamp format.
"""

from __future__ import annotations

from .book import Ledger
from .rows import AttemptRow, AttemptState, SessionRow
from .store import default_path

__all__ = ["AttemptRow", "AttemptState", "Ledger", "SessionRow", "default_path"]
