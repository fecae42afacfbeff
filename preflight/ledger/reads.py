"""What the Ledger reads (sessions per account, attempts that may have billed) and the clock and
retrying every operation shares; book.py adds the writes and the claims on top.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from . import queries
from .backend import Dialect, Store
from .queries import PG_DAY_AGO, PG_NOW, SESSION_LIFETIME
from .retry import retrying
from .rows import UNSETTLED_STATES, AttemptRow, SessionRow, attempt_from, session_from, stamp, utc
from .tables import UNKNOWN_KEY

T = TypeVar("T")


class LedgerReads:
    """The reading half of a Ledger (book.py), on its store."""

    _store: Store
    dialect: Dialect
    retry_s: float
    _known_sessions: str

    def _run(self, doing: str, operation: Callable[[], T], *, deadline: float | None = None) -> T:
        """With a `deadline` (recording what was sent) any failure is retried until then."""
        return retrying(
            self._store,
            doing,
            operation,
            within_s=self.retry_s,
            any_error=deadline is not None,
            deadline=deadline,
        )

    def _now(self, now: datetime | None) -> tuple[str, tuple[Any, ...]]:
        """SQL for a stamp of `now`: the given time, else the database's clock on PostgreSQL
        and ours on SQLite (a file has no other)."""
        if now is None and self.dialect == "postgresql":
            return PG_NOW, ()
        return "?", (stamp(now),)

    def active_session(
        self,
        source_key: str,
        now: datetime | None = None,
        *,
        api_base: str | None = None,
        key_fingerprint: str | None = None,
    ) -> SessionRow | None:
        """The newest unexpired session for this source (and account, if given: a session
        opened with another key or API base is never handed out)."""
        when, params = self._now(now)
        where = f"WHERE source_key = ? AND expires_at > {when}"
        args: tuple[Any, ...] = (source_key, *params)
        if api_base is not None:
            where += " AND api_base = ? AND key_fingerprint = ?"
            args += (api_base, key_fingerprint or UNKNOWN_KEY)
        sql = f"{self._known_sessions} {where} ORDER BY created_at DESC, seq DESC LIMIT 1"
        row = self._run("reading sessions", lambda: self._store.execute(sql, args).fetchone())
        return None if row is None else session_from(row)

    def unsettled_attempts(
        self,
        source_key: str,
        *,
        api_base: str,
        key_fingerprint: str | None,
        now: datetime | None = None,
    ) -> list[AttemptRow]:
        """Attempts on this source and account that may have opened (and billed) a session the
        ledger does not know: 'sending' or 'ambiguous', started less than a session's lifetime
        ago (an older one cannot have a live session). A row whose key is 'unknown' (written
        before version 4) counts for every key: when in doubt, do not send. Oldest first."""
        params: tuple[str, ...] = ()
        if now is None and self.dialect == "postgresql":
            since = PG_DAY_AGO
        else:
            since, params = "?", (stamp(utc(now) - SESSION_LIFETIME),)
        states = ", ".join(f"'{s}'" for s in UNSETTLED_STATES)
        sql = (
            f"SELECT * FROM attempts WHERE source_key = ? AND api_base = ?"
            f" AND key_fingerprint IN (?, '{UNKNOWN_KEY}') AND state IN ({states})"
            f" AND started_at > {since} ORDER BY id"
        )
        args = (source_key, api_base, key_fingerprint or UNKNOWN_KEY, *params)
        rows = self._run("reading attempts", lambda: self._store.execute(sql, args).fetchall())
        return [attempt_from(row) for row in rows]

    def risky_attempts(self) -> list[AttemptRow]:
        """Every attempt that may have billed without a plain session: 'sending', 'ambiguous'
        and 'contended', newest first (`preflight sessions --attempts`)."""
        states = ", ".join(f"'{s}'" for s in queries.RISKY_STATES)
        sql = f"SELECT * FROM attempts WHERE state IN ({states}) ORDER BY id DESC"
        rows = self._run("reading attempts", lambda: self._store.execute(sql).fetchall())
        return [attempt_from(row) for row in rows]

    def sessions(
        self, *, active_only: bool = False, now: datetime | None = None
    ) -> list[SessionRow]:
        """Every recorded session, newest first."""
        when, params = self._now(now)
        where = f"WHERE expires_at > {when}" if active_only else ""
        sql = f"{self._known_sessions} {where} ORDER BY created_at DESC, seq DESC"
        args = params if active_only else ()
        rows = self._run("reading sessions", lambda: self._store.execute(sql, args).fetchall())
        return [session_from(row) for row in rows]

    def session(self, session_id: str) -> SessionRow | None:
        sql = self._known_sessions + " WHERE session_id = ?"
        row = self._run(
            "reading sessions", lambda: self._store.execute(sql, (session_id,)).fetchone()
        )
        return None if row is None else session_from(row)

    def attempts(self, source_key: str | None = None) -> list[AttemptRow]:
        """Attempts, oldest first; of one source if `source_key` is given."""
        where, params = (
            ("WHERE source_key = ?", (source_key,)) if source_key is not None else ("", ())
        )
        sql = f"SELECT * FROM attempts {where} ORDER BY id"
        rows = self._run("reading attempts", lambda: self._store.execute(sql, params).fetchall())
        return [attempt_from(row) for row in rows]
