"""The Ledger of `init`: a row per HTTP attempt written before it is sent, and the sessions they
opened (valid 24 h, reused instead of paying twice), per account, on the store of store.py/pg.py.

Every operation survives a lost connection (retry.py); the writes made on a claim's behalf check
it in the same transaction (the fence: backend.Claim).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..errors import ClaimLost, LedgerError
from . import lock, queries
from .backend import Claim
from .knobs import env_seconds
from .queries import SESSION_LIFETIME
from .reads import LedgerReads
from .retry import open_retrying
from .retry import retry_s as default_retry_s
from .rows import (
    FINISHED_STATES,
    AttemptState,
    FinishedState,
    SessionRow,
    as_integer,
    as_json,
    as_number,
    as_text,
    session_from,
    stamp,
    utc,
)
from .store import SqliteStore
from .tables import UNKNOWN_KEY

__all__ = ["LEASE_S", "SESSION_LIFETIME", "Ledger", "claim_key"]

# The only fields of an init-selection body; anything else (a key, a header) must never be stored.
REQUEST_FIELDS = frozenset({"video_url", "video_id", "task_id"})
# Pages of WAL and of free database pages kept ready before a billed request: recording its
# answer (attempt, session, both indexes, a page split or two) and releasing the lock fit in far
# fewer, and other processes sharing the ledger meanwhile may use a few.
ROOM_PAGES = 64
# How long a claim on a shared (PostgreSQL) ledger outlives its holder's last renewal
# ($PREFLIGHT_LEASE_S), how long `init` waits for another holder ($PREFLIGHT_CLAIM_WAIT_S), and
# after how long a SQLite lock whose holder still lives is taken over ($PREFLIGHT_LOCK_STALE_S).
LEASE_S = 30.0
CLAIM_WAIT_S = 300.0
LOCK_STALE_S = 900.0

T = TypeVar("T")


def claim_key(source_key: str, api_base: str | None, key_fingerprint: str | None) -> str:
    """What a claim or lock is taken on: one source for one account (API base, key)."""
    if api_base is None:
        return source_key
    return f"{key_fingerprint or UNKNOWN_KEY}@{api_base} {source_key}"


class Ledger(LedgerReads):
    """The attempts and sessions in one ledger: a SQLite file (safe to share between processes),
    or a postgresql:// DSN (safe to share between machines). `path` is safe to print."""

    def __init__(
        self,
        path: str | Path,
        *,
        lease_s: float | None = None,
        retry_s: float | None = None,
    ) -> None:
        self._lease_s = lease_s or env_seconds("PREFLIGHT_LEASE_S", LEASE_S)
        self.retry_s = retry_s or default_retry_s()
        self._store = open_retrying(path, self.retry_s)
        self.path = self._store.path
        self.dialect = self._store.dialect
        self._known_sessions = queries.KNOWN_SESSIONS[self._store.dialect]

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
        key_fingerprint: str | None = None,
        claim: Claim | None = None,
        now: datetime | None = None,
    ) -> int:
        """Record an attempt as 'sending', committed before this returns: it precedes the send.

        With a claim, in the same transaction as confirming it is still ours: ClaimLost (and
        nothing written, nothing to send) if it was taken over."""
        unexpected = sorted(set(request_body) - REQUEST_FIELDS)
        if unexpected:
            raise ValueError(
                f"refusing to store request fields {unexpected}: only "
                f"{sorted(REQUEST_FIELDS)} belong in the ledger"
            )
        self.reserve_room()
        nonce = secrets.token_hex(16)  # the same row when a lost COMMIT makes us write it again
        when, when_params = self._now(now)
        params = (
            source,
            source_key,
            attempt_no,
            "sending",
            *when_params,
            as_json(request_body),
            None if facts is None else as_json(facts),
            verdict,
            api_base,
            key_fingerprint or UNKNOWN_KEY,
            socket.gethostname(),
            os.getpid(),
            nonce,
        )

        def write() -> int:
            with self._store.transaction():
                if claim is not None and not claim.confirm(self._store):
                    raise ClaimLost(
                        f"the claim on {source} in {self.path} was taken over by another "
                        "process before sending (this one was paused or cut off from the "
                        "ledger past its lease): nothing was sent"
                    )
                self._store.execute(queries.INSERT_ATTEMPT.format(now=when), params)
                row = self._store.execute(
                    "SELECT id FROM attempts WHERE nonce = ?", (nonce,)
                ).fetchone()
                return int(row[0])

        return self._run("recording an attempt", write)

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
        claim: Claim | None = None,
        server_date: datetime | None = None,
        deadline: float | None = None,
        now: datetime | None = None,
    ) -> SessionRow:
        """Finish the attempt and record the session it opened, in one transaction: a session
        the API billed is in the ledger with its attempt, or neither was written.

        The session expires 24 h after `server_date` (the API's clock), else after the ledger's
        now. With a claim taken over meanwhile, both are marked contended (the row says so).
        With a monotonic `deadline`, every failure is retried until then (it was billed)."""

        def write() -> SessionRow:
            with self._store.transaction():
                contended = claim is not None and not claim.held(self._store)
                state: AttemptState = "contended" if contended else "ok"
                changed = self._finish(
                    attempt_id,
                    state=state,
                    http_status=http_status,
                    code=0,
                    message=message,
                    request_id=request_id,
                    session_id=session_id,
                    ambiguous=ambiguous,
                    cross_check=cross_check,
                    now=now,
                )
                if changed != 1:
                    raise LedgerError(
                        f"ledger {self.path}: there is no attempt {attempt_id} to finish"
                    )
                (source, key, api_base, fingerprint) = self._store.execute(
                    "SELECT source, source_key, api_base, key_fingerprint FROM attempts"
                    " WHERE id = ?",
                    (attempt_id,),
                ).fetchone()
                return self._insert_session(
                    session_id=session_id,
                    source=source,
                    source_key=key,
                    attempt_id=attempt_id,
                    data=data,
                    request_id=request_id,
                    duration_bucket=duration_bucket,
                    key_fingerprint=key_fingerprint or fingerprint,
                    api_base=api_base,
                    contended=contended,
                    created=server_date or now,
                )

        return self._run(f"recording session {session_id}", write, deadline=deadline)

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
        deadline: float | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record how an attempt ended. May be called again (init adds the cross-check later):
        a None argument keeps what the row holds, and `ambiguous` once set stays set."""
        # Checked at run time too: a caller without mypy could write 'sending' back.
        if state not in FINISHED_STATES:
            raise ValueError(f"an attempt finishes as one of {FINISHED_STATES}, not {state!r}")
        changed = self._run(
            f"finishing attempt {attempt_id}",
            lambda: self._finish(
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
            ),
            deadline=deadline,
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
        when, when_params = self._now(now)
        sql = queries.FINISH.format(now=when, greatest=queries.GREATEST[self.dialect])
        cursor = self._store.execute(
            sql,
            (
                state,
                *when_params,
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
        api_base: str | None = None,
        now: datetime | None = None,
    ) -> SessionRow:
        """Record a session the API opened. `data` is the response's `data` object; a field of an
        odd type is stored as NULL rather than lost with the (already billed) session."""

        def write() -> SessionRow:
            with self._store.transaction():
                return self._insert_session(
                    session_id=session_id,
                    source=source,
                    source_key=source_key,
                    attempt_id=attempt_id,
                    data=data,
                    request_id=request_id,
                    duration_bucket=duration_bucket,
                    key_fingerprint=key_fingerprint,
                    api_base=api_base,
                    contended=False,
                    created=now,
                )

        return self._run(f"recording session {session_id}", write)

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
        api_base: str | None,
        contended: bool,
        created: datetime | None,
        expires: datetime | None = None,
    ) -> SessionRow:
        if created is None and self.dialect == "postgresql":
            created = utc(self._store.execute("SELECT now()").fetchone()[0])
        opened = utc(created)
        deduction = data.get("final_unit_deduction")
        if deduction is not None and not isinstance(deduction, str):
            deduction = as_json(deduction)
        self._store.execute(
            queries.INSERT_SESSION,
            (
                session_id,
                source,
                source_key,
                attempt_id,
                stamp(opened),
                stamp(expires or opened + SESSION_LIFETIME),
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
                key_fingerprint or UNKNOWN_KEY,
                api_base,
                int(contended),
            ),
        )
        row = self._store.execute(
            "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return session_from(row)

    def exclusive(
        self,
        source_key: str,
        *,
        api_base: str | None = None,
        key_fingerprint: str | None = None,
        wait_s: float | None = None,
        stale_s: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> AbstractContextManager[Claim]:
        """Hold the claim on one source for one account across processes, so two `init`s
        cannot both pay; yields the Claim that begin_attempt and record_opened check.

        On SQLite the claim is a row in `locks`, not a file lock: it works wherever the ledger
        does and a holder that died is recognised (same host, no such pid) or outlived (older
        than stale_s). On PostgreSQL it is a claim row with a lease and a token (claim.py): a
        holder on any machine that stops renewing it is taken over lease_s later. `on_wait` is
        told, once, whom we wait for.
        """
        key = claim_key(source_key, api_base, key_fingerprint)
        wait = wait_s if wait_s is not None else env_seconds("PREFLIGHT_CLAIM_WAIT_S", CLAIM_WAIT_S)
        if self._store.dialect == "postgresql":
            from . import claim
            from .pg import PgStore

            assert isinstance(self._store, PgStore)
            return claim.hold(
                self._store,
                key,
                wait_s=wait,
                lease_s=self._lease_s,
                retry_s=self.retry_s,
                label=source_key,
                on_wait=on_wait,
            )
        assert isinstance(self._store, SqliteStore)
        stale = (
            stale_s if stale_s is not None else env_seconds("PREFLIGHT_LOCK_STALE_S", LOCK_STALE_S)
        )
        return lock.hold(
            self._store, key, wait_s=wait, stale_s=stale, label=source_key, on_wait=on_wait
        )
