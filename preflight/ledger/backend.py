"""Which ledger a location names (a path: the SQLite file; postgresql://...: a shared server) and
the interface both stores give the Ledger, its lock and the probe cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .dsn import is_dsn

if TYPE_CHECKING:
    from pathlib import Path

Dialect = Literal["sqlite", "postgresql"]


class Row(Protocol):
    """A result row, by column name or position (sqlite3.Row and the PostgreSQL store's rows)."""

    def __getitem__(self, key: Any, /) -> Any: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class Store(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    @property
    def path(self) -> Path | str:
        """The file, or the DSN with its password masked: safe to print."""
        ...

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Cursor: ...

    def insert(self, sql: str, params: tuple[Any, ...]) -> int: ...

    def transaction(self) -> AbstractContextManager[Any]: ...

    def guard(self, doing: str) -> AbstractContextManager[None]: ...

    def reconnect(self) -> None:
        """Open the connection again after it failed (a file's needs nothing)."""
        ...

    def close(self) -> None: ...


class Claim(Protocol):
    """This process's hold on one (source, account) in one ledger: the SQLite lock row or the
    PostgreSQL claim with its token. Both checks run inside the caller's transaction, so what
    it writes there is written only if the claim was still ours (the fence)."""

    @property
    def token(self) -> int | None:
        """The PostgreSQL claim's token (it grows with every take-over); None on SQLite."""
        ...

    def confirm(self, store: Store) -> bool:
        """Right before sending: still ours? On PostgreSQL this also extends the lease."""
        ...

    def held(self, store: Store) -> bool:
        """When recording what was sent: still ours, or taken over meanwhile (contended)?"""
        ...


def open_store(location: str | Path, *, threads: bool = False) -> Store:
    """The store a location names: a PostgreSQL server for a postgresql:// DSN, else the file."""
    if is_dsn(location):
        from .pg import PgStore

        return PgStore(str(location))
    from .store import SqliteStore

    return SqliteStore(location, threads=threads)
