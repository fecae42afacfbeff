"""The Ledger of `init`: a row per HTTP attempt written before it is sent, and the sessions they
opened (valid 24 h, reused instead of paying twice), on the file and connection of store.py.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LedgerError
from . import lock
from .backend import Dialect, open_store
from .rows import (
    FINISHED_STATES,
    STAMP_FORMAT,
    AttemptRow,
    AttemptState,
    FinishedState,
    SessionRow,
    as_integer,
    as_json,
    as_number,
    as_text,
    attempt_from,
    session_from,
    stamp,
    utc,
)
from .store import SqliteStore

SESSION_LIFETIME = timedelta(hours=24)
# The only fields of an init-selection body; anything else (a key, a header) must never be stored.
REQUEST_FIELDS = frozenset({"video_url", "video_id", "task_id"})
# Pages of WAL and of free database pages kept ready before a billed request: recording its
# answer (attempt, session, both indexes, a page split or two) and releasing the lock fit in far
# fewer, and other processes sharing the ledger meanwhile may use a few.
ROOM_PAGES = 64
_LIFETIME_S = int(SESSION_LIFETIME.total_seconds())
# Every session the ledger knows: the sessions table, and a session that only lives on its
# attempt row (a ledger written by a preflight that recorded the two in separate transactions
# and failed in between, e.g. on a full disk). It expires 24 h after that attempt finished.
_KNOWN_SESSIONS = """
WITH known AS (
    SELECT session_id, source, source_key, attempt_id, created_at, expires_at, fps,
        original_duration, width, height, total_frame, normalized_video,
        final_unit_deduction, request_id, duration_bucket, key_fingerprint, {seq} AS seq
    FROM sessions
    UNION ALL
    SELECT a.session_id, a.source, a.source_key, a.id, a.finished_at, {expires},
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, a.request_id, NULL, NULL, -a.id
    FROM attempts a
    WHERE a.state = 'ok' AND a.session_id IS NOT NULL AND a.finished_at IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = a.session_id)
)
SELECT * FROM known
"""
# What differs between the two ledgers' SQL: how a stamp gets 24 h later, the sessions' order.
_KNOWN_SESSIONS_IN: dict[Dialect, str] = {
    "sqlite": _KNOWN_SESSIONS.format(
        seq="rowid",
        expires=f"strftime('{STAMP_FORMAT}', a.finished_at, '+{_LIFETIME_S} seconds')",
    ),
    "postgresql": _KNOWN_SESSIONS.format(
        seq="seq",
        expires="to_char((a.finished_at::timestamptz AT TIME ZONE 'UTC')"
        f" + interval '{_LIFETIME_S} seconds', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    ),
}
_GREATEST: dict[Dialect, str] = {"sqlite": "max", "postgresql": "greatest"}
# How long a claim on a shared (PostgreSQL) ledger outlives its holder's last renewal.
LEASE_S = 30.0


class Ledger:
    """The attempts and sessions in one ledger: a SQLite file (safe to share between processes),
    or a postgresql:// DSN (safe to share between machines). `path` is safe to print."""

    def __init__(self, path: str | Path, *, lease_s: float = LEASE_S) -> None:
        self._store = open_store(path)
        self.path = self._store.path
        self._lease_s = lease_s
        self._known_sessions = _KNOWN_SESSIONS_IN[self._store.dialect]

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def begin_attempt(
        self,
        *,
        source: str,
        source_key: str,
        attempt_no: int,
        request_body: dict[str, Any],
        facts: dict[str, Any] | None,
        verdict: str | None,
        api_base: str,
        now: datetime | None = None,
    ) -> int:
        """Record an attempt as 'sending', committed before this returns: it precedes the send."""
        unexpected = sorted(set(request_body) - REQUEST_FIELDS)
        if unexpected:
            raise ValueError(
                f"refusing to store request fields {unexpected}: only "
                f"{sorted(REQUEST_FIELDS)} belong in the ledger"
            )
        self.reserve_room()
        with self._store.guard("recording an attempt"):
            return self._store.insert(
                "INSERT INTO attempts (source, source_key, attempt_no, state, started_at,"
                " request_body, facts, verdict, api_base)"
                " VALUES (?, ?, ?, 'sending', ?, ?, ?, ?, ?)",
                (
                    source,
                    source_key,
                    attempt_no,
                    stamp(now),
                    as_json(request_body),
                    None if facts is None else as_json(facts),
                    verdict,
                    api_base,
                ),
            )

    def reserve_room(self) -> None:
        """Make sure the answer to a billed request can be recorded even if the disk fills up
        while the request is out: called by begin_attempt, so a failure here sends nothing.

        A WAL write appends frames, and the WAL file keeps its size when SQLite restarts it from
        the start; a blob written and deleted grows it by ROOM_PAGES, the checkpoint leaves as
        many free pages in the database, and RESTART makes the next writer reuse that space.
        A PostgreSQL server manages its own disk: there is nothing to prepare.
        """
        if self._store.dialect != "sqlite":
            return
        with self._store.guard("reserving room for the answer"):
            page_size = self._store.execute("PRAGMA page_size").fetchone()[0]
            self._store.execute(
                "INSERT INTO room (filler) VALUES (zeroblob(?))", (ROOM_PAGES * page_size,)
            )
            self._store.execute("DELETE FROM room")
            self._store.execute("PRAGMA wal_checkpoint(RESTART)")

    def record_opened(
        self,
        attempt_id: int,
        *,
        session_id: str,
        data: dict[str, Any],
        http_status: int | None,
        message: str | None,
        request_id: str | None,
        ambiguous: bool,
        cross_check: list[dict[str, Any]],
        duration_bucket: str | None = None,
        key_fingerprint: str | None = None,
        now: datetime | None = None,
    ) -> SessionRow:
        """Finish the attempt as ok and record the session it opened, in one transaction: a
        session the API billed is in the ledger with its attempt, or neither was written."""
        with self._store.guard(f"recording session {session_id}"), self._store.transaction():
            row = self._finish(
                attempt_id,
                state="ok",
                http_status=http_status,
                code=0,
                message=message,
                request_id=request_id,
                session_id=session_id,
                ambiguous=ambiguous,
                cross_check=cross_check,
                now=now,
            )
            if row != 1:
                raise LedgerError(f"ledger {self.path}: there is no attempt {attempt_id} to finish")
            (source, key) = self._store.execute(
                "SELECT source, source_key FROM attempts WHERE id = ?", (attempt_id,)
            ).fetchone()
            return self._insert_session(
                session_id=session_id,
                source=source,
                source_key=key,
                attempt_id=attempt_id,
                data=data,
                request_id=request_id,
                duration_bucket=duration_bucket,
                key_fingerprint=key_fingerprint,
                now=now,
            )

    def finish_attempt(
        self,
        attempt_id: int,
        *,
        state: FinishedState,
        http_status: int | None = None,
        code: int | None = None,
        message: str | None = None,
        request_id: str | None = None,
        session_id: str | None = None,
        ambiguous: bool = False,
        cross_check: list[dict[str, Any]] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record how an attempt ended. May be called again (init adds the cross-check later):
        a None argument keeps what the row holds, and `ambiguous` once set stays set."""
        # Checked at run time too: a caller without mypy could write 'sending' back.
        if state not in FINISHED_STATES:
            raise ValueError(f"an attempt finishes as one of {FINISHED_STATES}, not {state!r}")
        with self._store.guard(f"finishing attempt {attempt_id}"):
            changed = self._finish(
                attempt_id,
                state=state,
                http_status=http_status,
                code=code,
                message=message,
                request_id=request_id,
                session_id=session_id,
                ambiguous=ambiguous,
                cross_check=cross_check,
                now=now,
            )
        if changed != 1:
            raise LedgerError(f"ledger {self.path}: there is no attempt {attempt_id} to finish")

    def _finish(
        self,
        attempt_id: int,
        *,
        state: AttemptState,
        http_status: int | None,
        code: int | None,
        message: str | None,
        request_id: str | None,
        session_id: str | None,
        ambiguous: bool,
        cross_check: list[dict[str, Any]] | None,
        now: datetime | None,
    ) -> int:
        greatest = _GREATEST[self._store.dialect]
        cursor = self._store.execute(
            "UPDATE attempts SET state = ?, finished_at = ?,"
            " http_status = coalesce(?, http_status), code = coalesce(?, code),"
            " message = coalesce(?, message), request_id = coalesce(?, request_id),"
            f" session_id = coalesce(?, session_id), ambiguous = {greatest}(ambiguous, ?),"
            " cross_check = coalesce(?, cross_check) WHERE id = ?",
            (
                state,
                stamp(now),
                http_status,
                code,
                message,
                request_id,
                session_id,
                int(ambiguous),
                None if cross_check is None else as_json(cross_check),
                attempt_id,
            ),
        )
        return cursor.rowcount

    def record_session(
        self,
        *,
        session_id: str,
        source: str,
        source_key: str,
        attempt_id: int,
        data: dict[str, Any],
        request_id: str | None,
        duration_bucket: str | None = None,
        key_fingerprint: str | None = None,
        now: datetime | None = None,
    ) -> SessionRow:
        """Record a session the API opened. `data` is the response's `data` object; a field of an
        odd type is stored as NULL rather than lost with the (already billed) session."""
        with self._store.guard(f"recording session {session_id}"), self._store.transaction():
            return self._insert_session(
                session_id=session_id,
                source=source,
                source_key=source_key,
                attempt_id=attempt_id,
                data=data,
                request_id=request_id,
                duration_bucket=duration_bucket,
                key_fingerprint=key_fingerprint,
                now=now,
            )

    def _insert_session(
        self,
        *,
        session_id: str,
        source: str,
        source_key: str,
        attempt_id: int,
        data: dict[str, Any],
        request_id: str | None,
        duration_bucket: str | None,
        key_fingerprint: str | None,
        now: datetime | None,
    ) -> SessionRow:
        created = utc(now)
        deduction = data.get("final_unit_deduction")
        if deduction is not None and not isinstance(deduction, str):
            deduction = as_json(deduction)
        # The same session recorded twice keeps its first record: the call is idempotent.
        self._store.execute(
            "INSERT INTO sessions (session_id, source, source_key, attempt_id, created_at,"
            " expires_at, fps, original_duration, width, height, total_frame,"
            " normalized_video, final_unit_deduction, request_id, data, duration_bucket,"
            " key_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (session_id) DO NOTHING",
            (
                session_id,
                source,
                source_key,
                attempt_id,
                stamp(created),
                stamp(created + SESSION_LIFETIME),
                as_number(data.get("fps")),
                as_number(data.get("original_duration")),
                as_integer(data.get("width")),
                as_integer(data.get("height")),
                as_integer(data.get("total_frame")),
                as_text(data.get("normalized_video")),
                deduction,
                request_id,
                as_json(data),
                duration_bucket,
                key_fingerprint,
            ),
        )
        row = self._store.execute(
            "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return session_from(row)

    def active_session(self, source_key: str, now: datetime | None = None) -> SessionRow | None:
        """The newest unexpired session for this source, if any."""
        with self._store.guard("reading sessions"):
            row = self._store.execute(
                self._known_sessions + " WHERE source_key = ? AND expires_at > ?"
                " ORDER BY created_at DESC, seq DESC LIMIT 1",
                (source_key, stamp(now)),
            ).fetchone()
        return None if row is None else session_from(row)

    def sessions(
        self, *, active_only: bool = False, now: datetime | None = None
    ) -> list[SessionRow]:
        """Every recorded session, newest first."""
        where, params = ("WHERE expires_at > ?", (stamp(now),)) if active_only else ("", ())
        with self._store.guard("reading sessions"):
            rows = self._store.execute(
                f"{self._known_sessions} {where} ORDER BY created_at DESC, seq DESC", params
            ).fetchall()
        return [session_from(row) for row in rows]

    def session(self, session_id: str) -> SessionRow | None:
        with self._store.guard("reading sessions"):
            row = self._store.execute(
                self._known_sessions + " WHERE session_id = ?", (session_id,)
            ).fetchone()
        return None if row is None else session_from(row)

    def attempts(self, source_key: str | None = None) -> list[AttemptRow]:
        """Attempts, oldest first; of one source if `source_key` is given."""
        where, params = (
            ("WHERE source_key = ?", (source_key,)) if source_key is not None else ("", ())
        )
        with self._store.guard("reading attempts"):
            rows = self._store.execute(
                f"SELECT * FROM attempts {where} ORDER BY id", params
            ).fetchall()
        return [attempt_from(row) for row in rows]

    def exclusive(
        self, source_key: str, *, wait_s: float = 300.0, stale_s: float = 900.0
    ) -> AbstractContextManager[None]:
        """Hold the lock on one source across processes, so two `init`s cannot both pay.

        On SQLite the lock is a row in `locks`, not a file lock: it works wherever the ledger
        does and a holder that died is recognised (same host, no such pid) or outlived (older
        than stale_s). On PostgreSQL it is a claim row with a lease (claim.py): a holder on any
        machine that stops renewing it is taken over lease_s later.
        """
        if self._store.dialect == "postgresql":
            from . import claim
            from .pg import PgStore

            assert isinstance(self._store, PgStore)
            return claim.hold(self._store, source_key, wait_s=wait_s, lease_s=self._lease_s)
        assert isinstance(self._store, SqliteStore)
        return lock.hold(self._store, source_key, wait_s=wait_s, stale_s=stale_s)
