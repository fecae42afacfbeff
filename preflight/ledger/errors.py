"""The ledger's errors: LedgerError for a ledger that cannot be opened or written before anything
was sent, LedgerBusy for a source whose lock another process held too long (both UsageErrors to
the CLI), and SessionUnrecorded for a ledger that failed after a request was sent.
"""

from __future__ import annotations

from typing import Any

from ..errors import PreflightError, UsageError


class LedgerError(UsageError):
    """The ledger could not be opened or written (not a SQLite file, unwritable, newer schema)."""


class LedgerBusy(LedgerError):
    """Another process held the lock on a source for longer than we were willing to wait."""


class SessionUnrecorded(PreflightError):
    """The ledger failed after a billed request was sent: the session the API opened (if
    `session_id` is set) or may have opened is not recorded, so a later `init` cannot reuse it.

    Not a usage error (exit 2): money may have been spent. The CLI exits 4 with kind
    `unrecorded` and prints the session id, the only record of it left.
    """

    kind = "unrecorded"

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None,
        request_id: str | None = None,
        attempts: int = 1,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.request_id = request_id
        self.attempts = attempts
        self.ambiguous = ambiguous

    @property
    def hint(self) -> str:
        if self.session_id:
            return "keep this session id: the ledger does not know it, free space or fix the ledger"
        return "see the ledger's attempts: a session may have been opened and billed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": str(self),
            "session_id": self.session_id,
            "request_id": self.request_id,
            "hint": self.hint,
            "attempts": self.attempts,
            "ambiguous": self.ambiguous,
        }
