"""The probe cache: facts of sources already probed, kept in the ledger (its SQLite file, or the
shared PostgreSQL database, where every machine sees what one probed).

Keyed so that any change to a source misses: local files by absolute path, size, mtime and inode;
URLs by final URL, ETag or Last-Modified, and length. Verdicts are never cached, only facts, so a
new policy judges cached facts afresh. The HTML report's thumbnail of a file lives in the same
row as its facts (ThumbnailCache), so it is invalidated with them.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import LedgerError
from .facts import Disagreement, Facts
from .ledger.backend import open_store
from .ledger.tables import PROBE_CACHE

if TYPE_CHECKING:
    from pathlib import Path

# Part of every key: a new preflight (or a change in how facts are read) never sees old facts.
CACHE_FORMAT = f"facts-v3|{__version__}"  # v2: file paths as hex bytes; v3: video_track_id


class ProbeCache:
    """Thread-safe: one connection behind a lock (each call is one short statement)."""

    def __init__(self, path: str | Path) -> None:
        # The ledger's own store: it creates the file (0600), its folder and WAL mode, or the
        # server's schema, or says why not (LedgerError), exactly as for `init`.
        self._store = open_store(path, threads=True)
        self.path = self._store.path
        self._lock = threading.Lock()
        try:
            with self._store.guard("opening the probe cache"):
                self._store.execute(PROBE_CACHE)
        except LedgerError:
            self._store.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def __enter__(self) -> ProbeCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def file_key(path: str, backend: str) -> str | None:
        try:
            info = os.stat(path)
        except (OSError, ValueError):  # ValueError: a NUL in the name; the probe reports it
            return None
        # The path as its bytes, in hex: a name that is not UTF-8 (its bytes arrive as surrogate
        # escapes, which SQLite's UTF-8 text cannot hold) gets a key like any other, and since
        # fsencode and hex are both one-to-one, two different names never share one.
        absolute = os.fsencode(os.path.abspath(path)).hex()
        return (
            f"{CACHE_FORMAT}|{backend}|file|{absolute}|{info.st_size}|{info.st_mtime_ns}|"
            f"{info.st_ino}"
        )

    @staticmethod
    def url_key(
        final_url: str, etag: str, last_modified: str, size: int | None, backend: str
    ) -> str | None:
        validator = etag or last_modified
        if not validator or size is None:
            return None  # nothing tells us whether the resource changed: always probe
        return f"{CACHE_FORMAT}|{backend}|url|{final_url}|{validator}|{size}"

    def get(self, key: str | None) -> tuple[Facts, list[Disagreement]] | None:
        if key is None:
            return None
        try:
            with self._lock, self._store.guard("reading the probe cache"):
                row = self._store.execute(
                    "SELECT facts, disagreements FROM probe_cache WHERE key = ?", (key,)
                ).fetchone()
        except (LedgerError, ValueError):
            # A cache that cannot be read is a miss, never a failure (ValueError: a key SQLite
            # cannot encode, such as a URL holding surrogate escapes).
            row = None
        if row is None:
            return None
        facts = Facts.from_dict(json.loads(row[0]))
        disagreements = [Disagreement(**d) for d in json.loads(row[1])]
        return facts, disagreements

    def put(self, key: str | None, facts: Facts, disagreements: list[Disagreement]) -> None:
        if key is None:
            return
        from .ledger.rows import stamp  # rows.py (datetime, two dataclasses): when writing only

        values = (
            key,
            json.dumps(facts.to_dict()),
            json.dumps([_plain(d) for d in disagreements]),
            stamp(),
        )
        try:
            with self._lock, self._store.guard("writing the probe cache"):
                # An upsert both SQLite and PostgreSQL read; the newest facts win.
                self._store.execute(
                    "INSERT INTO probe_cache (key, facts, disagreements, stored_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                    " facts = excluded.facts, disagreements = excluded.disagreements,"
                    " stored_at = excluded.stored_at",
                    values,
                )
        except (LedgerError, ValueError):
            pass  # a full disk or a locked file costs a re-probe next time, nothing else

    def thumbnail(self, key: str | None) -> str | None:
        """The thumbnail kept in the row of `key` (ThumbnailCache), or None."""
        if key is None:
            return None
        try:
            with self._lock, self._store.guard("reading the probe cache"):
                row = self._store.execute(
                    "SELECT thumbnail FROM probe_cache WHERE key = ?", (key,)
                ).fetchone()
        except (LedgerError, ValueError):
            return None  # as for facts: a cache that cannot be read is a miss
        return str(row[0]) if row is not None and row[0] else None

    def put_thumbnails(self, rows: list[tuple[str, str]]) -> None:
        """(thumbnail, key) pairs into the rows that hold those keys' facts, in one transaction."""
        if not rows:
            return
        try:
            with (
                self._lock,
                self._store.guard("writing the probe cache"),
                self._store.transaction(),
            ):
                for row in rows:
                    self._store.execute("UPDATE probe_cache SET thumbnail = ? WHERE key = ?", row)
        except (LedgerError, ValueError):
            pass  # a full disk or a locked file costs a decode next time, nothing else

    def thumbnails(self, backend: str) -> ThumbnailCache:
        return ThumbnailCache(self, backend)


class ThumbnailCache:
    """The report's thumbnails (JPEG, base64) in the probe cache row of the same file and backend.

    Only a row the check wrote (or read) holds one: a file whose facts are not cached gets none.
    """

    def __init__(self, cache: ProbeCache, backend: str) -> None:
        self.cache = cache
        self.backend = backend

    def get(self, path: str) -> str | None:
        return self.cache.thumbnail(self.cache.file_key(path, self.backend))

    def put_many(self, thumbnails: list[tuple[str, str]]) -> None:
        """Keep (path, JPEG in base64) pairs."""
        keyed = [(jpeg, self.cache.file_key(path, self.backend)) for path, jpeg in thumbnails]
        self.cache.put_thumbnails([(jpeg, key) for jpeg, key in keyed if key is not None])


def _plain(d: Disagreement) -> dict[str, Any]:
    return {"field": d.field, "mediainfo": d.mediainfo, "ffprobe": d.ffprobe}
