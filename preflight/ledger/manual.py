"""A session recorded by hand: `preflight sessions import ID --source SRC`, for a session the API
opened (and billed) that the ledger missed, its id printed by an `init` that exited 4 `unrecorded`.
"""

from __future__ import annotations

from datetime import datetime

from ..errors import UsageError
from .book import Ledger
from .rows import SessionRow


def import_session(
    book: Ledger,
    session_id: str,
    *,
    source: str,
    source_key: str,
    api_base: str,
    key_fingerprint: str,
    expires_at: datetime | None = None,
) -> SessionRow:
    """Record by hand a session the API opened that the ledger missed (its id was printed
    by an `init` that exited 4 `unrecorded`): an attempt row saying so, and the session,
    expiring at `expires_at` (else 24 h from now). UsageError if the id is already known."""
    if book.session(session_id) is not None:
        raise UsageError(f"session {session_id} is already in {book.path}")
    attempt = book.begin_attempt(
        source=source,
        source_key=source_key,
        attempt_no=0,
        request_body={},
        facts=None,
        verdict=None,
        api_base=api_base,
        key_fingerprint=key_fingerprint,
    )

    def write() -> SessionRow:
        with book._store.transaction():
            book._finish(
                attempt,
                state="ok",
                http_status=None,
                code=None,
                message="imported by hand (preflight sessions import)",
                request_id=None,
                session_id=session_id,
                ambiguous=False,
                cross_check=None,
                now=None,
            )
            row = book._insert_session(
                session_id=session_id,
                source=source,
                source_key=source_key,
                attempt_id=attempt,
                data={},
                request_id=None,
                duration_bucket=None,
                key_fingerprint=key_fingerprint,
                api_base=api_base,
                contended=False,
                created=None,
                expires=expires_at,
            )
            # The earlier attempts that may have opened it stay as they are: the next `init`
            # finds this active session first and reuses it.
            return row

    return book._run(f"importing session {session_id}", write)
