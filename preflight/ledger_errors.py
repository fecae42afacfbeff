"""The ledger's errors: LedgerError for a ledger that cannot be opened or written, and LedgerBusy
for a source whose lock another process held too long. Both are UsageErrors to the CLI.
"""

from __future__ import annotations

from .errors import UsageError


class LedgerError(UsageError):
    """The ledger could not be opened or written (not a SQLite file, unwritable, newer schema)."""


class LedgerBusy(LedgerError):
    """Another process held the lock on a source for longer than we were willing to wait."""
