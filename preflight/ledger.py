"""The SQLite ledger of `init`: a row per HTTP attempt written before it is sent, the sessions
they opened (valid 24 h, reused instead of paying twice), and a per-source lock across processes.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import platformdirs

from .errors import UsageError

SESSION_LIFETIME = timedelta(hours=24)
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
ATTEMPT_STATES = ("sending", "ok", "failed", "ambiguous")
# The only fields of an init-selection body; anything else (a key, a header) must never be stored.
REQUEST_FIELDS = frozenset({"video_url", "video_id", "task_id"})
_STAMP = "%Y-%m-%dT%H:%M:%SZ"

_SCHEMA = """
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    attempt_no INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'ok', 'failed', 'ambiguous')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    request_body TEXT NOT NULL,
    facts TEXT,
    verdict TEXT,
    http_status INTEGER,
    code INTEGER,
    message TEXT,
    request_id TEXT,
    session_id TEXT,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    cross_check TEXT NOT NULL DEFAULT '[]',
    api_base TEXT NOT NULL
);
CREATE INDEX attempts_by_source ON attempts (source_key, id);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    attempt_id INTEGER NOT NULL REFERENCES attempts (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    fps REAL,
    original_duration REAL,
    width INTEGER,
    height INTEGER,
    total_frame INTEGER,
    normalized_video TEXT,
    final_unit_deduction TEXT,
    request_id TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_by_source ON sessions (source_key, expires_at);
CREATE TABLE locks (
    source_key TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
"""


class LedgerError(UsageError):
    """The ledger could not be opened or written (not a SQLite file, unwritable, newer schema)."""


class LedgerBusy(LedgerError):
    """Another process held the lock on a source for longer than we were willing to wait."""


def default_path() -> Path:
    """$PREFLIGHT_LEDGER if set, else ledger.sqlite3 in the user's data folder."""
    named = os.environ.get("PREFLIGHT_LEDGER")
    if named:
        return Path(named).expanduser()
    return Path(platformdirs.user_data_dir("preflight")) / "ledger.sqlite3"


@dataclass(frozen=True)
class AttemptRow:
    id: int
    source: str
    source_key: str
    attempt_no: int
    state: str  # sending | ok | failed | ambiguous; 'sending' after a crash means "unknown"
    started_at: str
    finished_at: str | None
    request_body: dict[str, Any]
    facts: dict[str, Any] | None
    verdict: str | None
    http_status: int | None
    code: int | None
    message: str | None
    request_id: str | None
    session_id: str | None
    ambiguous: bool
    cross_check: list[dict[str, Any]]  # where the server's reading differs from our probe
    api_base: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    source: str
    source_key: str
    attempt_id: int
    created_at: str
    expires_at: str
    fps: float | None
    original_duration: float | None  # milliseconds, as the API reports it
    width: int | None
    height: int | None
    total_frame: int | None
    normalized_video: str | None
    final_unit_deduction: str | None
    request_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def active(self, now: datetime) -> bool:
        return _parse(self.expires_at) > _utc(now)


class Ledger:
    """One connection to one ledger file; safe to share the file between processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            _make_parents(self.path.parent)
            _create_private(self.path)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger {self.path}: {_reason(exc)}") from None
        try:
            # Autocommit: every statement commits at once unless we BEGIN ourselves.
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {_reason(exc)}") from None
        try:
            self._conn.row_factory = sqlite3.Row
            self._prepare()
        except (sqlite3.Error, LedgerError) as exc:
            self._conn.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"cannot open the ledger {self.path}: {_reason(exc)}") from None

    def _prepare(self) -> None:
        conn = self._conn
        # busy_timeout first, so that switching to WAL waits for a concurrent creator.
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        with self._transaction():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise LedgerError(
                    f"the ledger {self.path} has schema version {version}, newer than this "
                    f"preflight understands ({SCHEMA_VERSION}): upgrade preflight"
                )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: a read-then-write cannot be raced.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path}: {doing} failed: {_reason(exc)}") from None

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
        with self._guard("recording an attempt"):
            cursor = self._conn.execute(
                "INSERT INTO attempts (source, source_key, attempt_no, state, started_at,"
                " request_body, facts, verdict, api_base)"
                " VALUES (?, ?, ?, 'sending', ?, ?, ?, ?, ?)",
                (
                    source,
                    source_key,
                    attempt_no,
                    _stamp(now),
                    _dumps(request_body),
                    None if facts is None else _dumps(facts),
                    verdict,
                    api_base,
                ),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_attempt(
        self,
        attempt_id: int,
        *,
        state: str,
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
        if state not in ATTEMPT_STATES[1:]:
            raise ValueError(f"an attempt finishes as one of {ATTEMPT_STATES[1:]}, not {state!r}")
        with self._guard(f"finishing attempt {attempt_id}"):
            cursor = self._conn.execute(
                "UPDATE attempts SET state = ?, finished_at = ?,"
                " http_status = coalesce(?, http_status), code = coalesce(?, code),"
                " message = coalesce(?, message), request_id = coalesce(?, request_id),"
                " session_id = coalesce(?, session_id), ambiguous = max(ambiguous, ?),"
                " cross_check = coalesce(?, cross_check) WHERE id = ?",
                (
                    state,
                    _stamp(now),
                    http_status,
                    code,
                    message,
                    request_id,
                    session_id,
                    int(ambiguous),
                    None if cross_check is None else _dumps(cross_check),
                    attempt_id,
                ),
            )
        if cursor.rowcount != 1:
            raise LedgerError(f"ledger {self.path}: there is no attempt {attempt_id} to finish")

    def record_session(
        self,
        *,
        session_id: str,
        source: str,
        source_key: str,
        attempt_id: int,
        data: dict[str, Any],
        request_id: str | None,
        now: datetime | None = None,
    ) -> SessionRow:
        """Record a session the API opened. `data` is the response's `data` object; a field of an
        odd type is stored as NULL rather than lost with the (already billed) session."""
        created = _utc(now)
        deduction = data.get("final_unit_deduction")
        if deduction is not None and not isinstance(deduction, str):
            deduction = _dumps(deduction)
        with self._guard(f"recording session {session_id}"), self._transaction() as conn:
            # The same session recorded twice keeps its first record: the call is idempotent.
            conn.execute(
                "INSERT INTO sessions (session_id, source, source_key, attempt_id, created_at,"
                " expires_at, fps, original_duration, width, height, total_frame,"
                " normalized_video, final_unit_deduction, request_id, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id) DO NOTHING",
                (
                    session_id,
                    source,
                    source_key,
                    attempt_id,
                    _stamp(created),
                    _stamp(created + SESSION_LIFETIME),
                    _number(data.get("fps")),
                    _number(data.get("original_duration")),
                    _integer(data.get("width")),
                    _integer(data.get("height")),
                    _integer(data.get("total_frame")),
                    _text(data.get("normalized_video")),
                    deduction,
                    request_id,
                    _dumps(data),
                ),
            )
            row = conn.execute(
                "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return _session_from(row)

    def active_session(self, source_key: str, now: datetime | None = None) -> SessionRow | None:
        """The newest unexpired session for this source, if any."""
        with self._guard("reading sessions"):
            row = self._conn.execute(
                "SELECT * FROM sessions WHERE source_key = ? AND expires_at > ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (source_key, _stamp(now)),
            ).fetchone()
        return None if row is None else _session_from(row)

    def sessions(
        self, *, active_only: bool = False, now: datetime | None = None
    ) -> list[SessionRow]:
        """Every recorded session, newest first."""
        where, params = ("WHERE expires_at > ?", (_stamp(now),)) if active_only else ("", ())
        with self._guard("reading sessions"):
            rows = self._conn.execute(
                f"SELECT * FROM sessions {where} ORDER BY created_at DESC, rowid DESC", params
            ).fetchall()
        return [_session_from(row) for row in rows]

    def session(self, session_id: str) -> SessionRow | None:
        with self._guard("reading sessions"):
            row = self._conn.execute(
                "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return None if row is None else _session_from(row)

    def attempts(self, source_key: str | None = None) -> list[AttemptRow]:
        """Attempts, oldest first; of one source if `source_key` is given."""
        where, params = (
            ("WHERE source_key = ?", (source_key,)) if source_key is not None else ("", ())
        )
        with self._guard("reading attempts"):
            rows = self._conn.execute(
                f"SELECT * FROM attempts {where} ORDER BY id", params
            ).fetchall()
        return [_attempt_from(row) for row in rows]

    @contextmanager
    def exclusive(
        self, source_key: str, *, wait_s: float = 300.0, stale_s: float = 900.0
    ) -> Iterator[None]:
        """Hold the lock on one source across processes, so two `init`s cannot both pay.

        The lock is a row in `locks`, not a file lock: it works wherever the ledger does and a
        holder that died is recognised (same host, no such pid) or outlived (older than stale_s).
        """
        me = (os.getpid(), socket.gethostname())
        deadline = time.monotonic() + wait_s
        while True:
            with self._guard(f"locking {source_key}"):
                acquired_at, holder = self._try_lock(source_key, me, stale_s)
            if acquired_at is not None:
                break
            if time.monotonic() >= deadline:
                raise LedgerBusy(
                    f"another preflight (pid {holder[0]} on {holder[1]}) holds the lock on "
                    f"{source_key} in {self.path}; gave up after {wait_s:g} s"
                )
            time.sleep(random.uniform(0.02, 0.1))  # jittered, so waiters do not move in step
        try:
            yield
        finally:
            with self._guard(f"unlocking {source_key}"):
                # Only our own row: a waiter may have judged us stale and taken over.
                self._conn.execute(
                    "DELETE FROM locks WHERE source_key = ? AND pid = ? AND host = ?"
                    " AND acquired_at = ?",
                    (source_key, me[0], me[1], acquired_at),
                )

    def _try_lock(
        self, source_key: str, me: tuple[int, str], stale_s: float
    ) -> tuple[str | None, tuple[int, str]]:
        now = _utc(None)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT pid, host, acquired_at FROM locks WHERE source_key = ?", (source_key,)
            ).fetchone()
            if row is not None and not _abandoned(row, me[1], now, stale_s):
                return None, (row["pid"], row["host"])
            acquired_at = _stamp(now)
            conn.execute(
                "INSERT OR REPLACE INTO locks (source_key, pid, host, acquired_at)"
                " VALUES (?, ?, ?, ?)",
                (source_key, me[0], me[1], acquired_at),
            )
        return acquired_at, me


def _abandoned(row: sqlite3.Row, my_host: str, now: datetime, stale_s: float) -> bool:
    try:
        age_s = (now - _parse(row["acquired_at"])).total_seconds()
    except ValueError:
        return True  # not a time we wrote: nobody can be waiting on it
    if age_s > stale_s:
        return True
    return row["host"] == my_host and not _alive(row["pid"])


def _alive(pid: int) -> bool:
    # On Windows os.kill(pid, 0) would terminate the process: there we rely on stale_s alone.
    if pid <= 0 or sys.platform == "win32":
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: alive, owned by someone else
    return True


def _make_parents(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        # 0o700: the ledger tells what was sent where and when; it is nobody else's business.
        each.mkdir(mode=0o700, exist_ok=True)


def _create_private(path: Path) -> None:
    # Create the file ourselves so that SQLite never makes it with the umask's looser mode;
    # SQLite gives the -wal and -shm files the same mode as the database.
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _session_from(row: sqlite3.Row) -> SessionRow:
    return SessionRow(**{f.name: row[f.name] for f in fields(SessionRow)})


def _attempt_from(row: sqlite3.Row) -> AttemptRow:
    values = {f.name: row[f.name] for f in fields(AttemptRow)}
    for name in ("request_body", "facts", "cross_check"):  # the JSON columns
        values[name] = None if values[name] is None else json.loads(values[name])
    values["ambiguous"] = bool(values["ambiguous"])
    return AttemptRow(**values)


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(timezone.utc)
    # A naive time is taken as UTC, not local: the ledger never holds local times.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _stamp(moment: datetime | None) -> str:
    # Whole seconds, always the same width: stamps compare correctly as text, in SQL too.
    return _utc(moment).strftime(_STAMP)


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=timezone.utc)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
