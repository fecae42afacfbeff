"""The ledger: every attempt and every session init-selection opened, and the probe cache (SQLite).

`Ledger(path)` opens (or creates) one; `default_path()` is where it lives unless told otherwise.
"""

from __future__ import annotations

from .store import Ledger, default_path

__all__ = ["Ledger", "default_path"]
