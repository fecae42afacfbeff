"""The ledger's SQLite file: where it lives, creating it private, its schema and version, and one
connection with the transaction and error guard that the Ledger, its lock and the probe cache use.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Literal

from ..errors import LedgerError
from .dsn import is_dsn
from .tables import SCHEMA_VERSION, records, upgrade_steps

BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    records(id_type="INTEGER PRIMARY KEY", ref_type="INTEGER", float_type="REAL")
    + """
CREATE TABLE locks (
    source_key TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
"""
)
# Added without a version bump: older preflights ignore it. See Ledger.reserve_room.
_ROOM_TABLE = "CREATE TABLE IF NOT EXISTS room (filler BLOB NOT NULL)"


def default_path() -> str:
    """$PREFLIGHT_LEDGER if set (a path, or a postgresql:// DSN kept as text), else
    ledger.sqlite3 in the user's data folder."""
    named = os.environ.get("PREFLIGHT_LEDGER")
    if named and is_dsn(named):
        return named
    if named:
        return os.path.expanduser(named)
    return os.path.join(user_data_dir(), "ledger.sqlite3")


def user_data_dir() -> str:
    """platformdirs' user data folder for preflight (~/.local/share/preflight on Linux)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    home = os.environ.get("HOME", "")
    if sys.platform == "linux" and "ANDROID_ROOT" not in os.environ:
        # The usual Linux case, as platformdirs answers it (tests/test_ledger.py checks), without
        # its ~10 ms of imports on every cached check; anything unusual is left to platformdirs.
        if os.path.isabs(home) and (xdg == "" or os.path.isabs(xdg)):
            return os.path.join(xdg or os.path.expanduser("~/.local/share"), "preflight")
    import platformdirs

    return platformdirs.user_data_dir("preflight")


class SqliteStore:
    """One connection to one ledger file, created (mode 0600) and brought to the current schema.

    Safe to share the file between processes. `threads=True` lets other threads use the
    connection; the caller then serialises its statements.
    """

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, threads: bool = False) -> None:
        # Text, not a pathlib.Path: pathlib costs a cached check ~5 ms of imports.
        self.path = os.path.expanduser(os.fspath(path))
        try:
            _make_parents(os.path.dirname(os.path.abspath(self.path)))
            _create_private(self.path)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger {self.path}: {_reason(exc)}") from None
        try:
            # Autocommit: every statement commits at once unless we BEGIN ourselves.
            self._conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=not threads,
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
        if self._is_current():
            # The usual open: reads only. No write lock is taken and nothing is written, so a
            # cached check costs no commit, and closing has no WAL frames to checkpoint.
            conn.execute("PRAGMA foreign_keys = ON")
            return
        # Off while migrating (it cannot change inside a transaction): version 4 rebuilds the
        # attempts table that sessions refer to, as SQLite's guide to ALTER TABLE does it.
        conn.execute("PRAGMA foreign_keys = OFF")
        with self.transaction():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for _, statements in upgrade_steps(version, _SCHEMA, self.path, "sqlite"):
                for statement in statements:
                    conn.execute(statement)
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise LedgerError(f"the ledger {self.path}: migrating it broke a reference")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(_ROOM_TABLE)
        conn.execute("PRAGMA foreign_keys = ON")

    def _is_current(self) -> bool:
        """At this schema version, with the room table: nothing for _prepare to create."""
        if self._conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return False
        room = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'room'"
        ).fetchone()
        return room is not None

    def close(self) -> None:
        self._conn.close()

    def reconnect(self) -> None:
        """Nothing to do: a SQLite file has no connection to lose."""

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement, committed at once unless inside transaction()."""
        return self._conn.execute(sql, params)

    def insert(self, sql: str, params: tuple[Any, ...]) -> int:
        """One INSERT, committed at once unless inside transaction(); the new row's id."""
        rowid = self._conn.execute(sql, params).lastrowid
        assert rowid is not None
        return rowid

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        # IMMEDIATE takes the write lock up front: a read-then-write cannot be raced.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            # A COMMIT that fails (SQLITE_FULL, say) may leave the transaction open: close it,
            # or every later statement on this connection (the lock's release) would fail too.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Turn a SQLite failure inside into a LedgerError that says what was being done."""
        try:
            yield
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path}: {doing} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _make_parents(folder: str) -> None:
    missing: list[str] = []
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for each in reversed(missing):
        # 0o700: the ledger tells what was sent where and when; it is nobody else's business.
        with suppress(FileExistsError):
            os.mkdir(each, mode=0o700)


def _create_private(path: str) -> None:
    # Create the file ourselves so that SQLite never makes it with the umask's looser mode;
    # SQLite gives the -wal and -shm files the same mode as the database.
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
