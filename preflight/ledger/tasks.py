"""The ledger's memory of which route's query found a Kling task (table task_actions, schema
version 5): the session/task_query.ActionCache that init's `video_id` look-up uses, so that once
known a task costs one query GET.
"""

from __future__ import annotations

import contextlib

from ..errors import LedgerError
from .book import Ledger
from .rows import stamp


class TaskActions:
    """ActionCache on a Ledger; a failing ledger costs look-ups, never the check."""

    def __init__(self, book: Ledger) -> None:
        self._book = book

    def cached_action(self, api_base: str, task_id: str) -> str | None:
        def read() -> str | None:
            row = self._book._store.execute(
                "SELECT action FROM task_actions WHERE api_base = ? AND task_id = ?",
                (api_base, task_id),
            ).fetchone()
            return None if row is None else str(row[0])

        try:
            return self._book._run(f"reading the route of task {task_id}", read)
        except LedgerError:
            return None  # unknown: each route is asked, as on a first run

    def remember_action(self, api_base: str, task_id: str, action: str) -> None:
        def write() -> None:
            with self._book._store.transaction():
                self._book._store.execute(
                    "INSERT INTO task_actions (api_base, task_id, action, found_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (api_base, task_id)"
                    " DO UPDATE SET action = excluded.action, found_at = excluded.found_at",
                    (api_base, task_id, action, stamp(None)),
                )

        # A failure costs the next run its look-ups again, never a wrong answer.
        with contextlib.suppress(LedgerError):
            self._book._run(f"remembering the route of task {task_id}", write)
