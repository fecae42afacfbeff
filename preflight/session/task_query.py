"""The Kling task query client: `GET {api_base}/kling/v1/videos/{action}/{task_id}`, the look-up
that checks a `video_id` + `task_id` before the billed init-selection is sent.

A query is not billed, so unlike init (client.py) any answer may be asked again: transport
failures, 5xx and 524 are retried with back-off, a rate limit with the same Retry-After rules.
What an answer amounts to is answers.py's classification, the same as init's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol
from urllib.parse import quote

import requests

from ..errors import ApiError
from ..sources import TASK_ACTIONS
from .answers import envelope_error, non_json_error, server_date, transport_error
from .client import retry_delay, too_long_to_wait
from .credentials import ApiKey

__all__ = ["ActionCache", "TaskAnswer", "TaskClient", "task_route"]


def task_route(action: str, task_id: str) -> str:
    # The task id is data: quoted whole, so a '/' or '?' in it cannot change the route.
    return f"/kling/v1/videos/{action}/{quote(task_id, safe='')}"


@dataclass(frozen=True)
class TaskAnswer:
    """A task as the API described it, and which route's query found it."""

    task_id: str
    action: str
    data: dict[str, Any]  # the answer's `data`: task_status, created_at, task_result, ...
    server_date: datetime | None  # the API's Date header on the answer
    request_id: str | None = None


class ActionCache(Protocol):
    """Where the action that found a task is remembered (the ledger's task_actions)."""

    def cached_action(self, api_base: str, task_id: str) -> str | None: ...

    def remember_action(self, api_base: str, task_id: str, action: str) -> None: ...


@dataclass
class TaskClient:
    api_base: str
    key: ApiKey = field(repr=False)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_attempts: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 20.0
    debug: IO[str] | None = None
    sleep: Callable[[float], None] = time.sleep
    gets: int = 0  # queries sent by this client

    def find(
        self, task_id: str, *, action: str | None = None, cache: ActionCache | None = None
    ) -> tuple[TaskAnswer | None, list[str]]:
        """The task and the actions asked, in order; (None, asked) when no route knows it.

        A named `action`, or one the cache remembers for this task, is the only one asked: once
        known, a task costs one query. Raises ApiError for an answer that is neither the task nor
        "no such task" (auth, a rate limit past its waits, a server that keeps failing).
        """
        known = action or (cache.cached_action(self.api_base, task_id) if cache else None)
        order: Sequence[str] = (known,) if known else TASK_ACTIONS
        asked: list[str] = []
        with requests.Session() as session:
            session.headers["User-Agent"] = "preflight"
            for name in order:
                asked.append(name)
                try:
                    found = self._query(session, name, task_id)
                except ApiError as exc:
                    exc.args = (f"the task query failed, nothing was sent: {exc}",)
                    raise
                if found is not None:
                    if cache is not None and known is None:
                        cache.remember_action(self.api_base, task_id, name)
                    return found, asked
        return None, asked

    def _query(self, session: requests.Session, action: str, task_id: str) -> TaskAnswer | None:
        url = self.api_base + task_route(action, task_id)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._get(session, url, action, task_id)
            except ApiError as exc:
                exc.attempts = attempt
                if not exc.retryable:
                    raise
                if attempt == self.max_attempts:
                    exc.args = (f"{exc} (task query gave up after {attempt} attempts)",)
                    raise
                wait = retry_delay(attempt, exc.retry_after_s, self.backoff_s, self.backoff_max_s)
                if wait is None:  # the same rules as init's (client.py)
                    raise too_long_to_wait(exc) from None
                self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _get(
        self, session: requests.Session, url: str, action: str, task_id: str
    ) -> TaskAnswer | None:
        self._trace(f"GET {url} Authorization: Bearer ***")
        self.gets += 1
        try:
            response = session.get(
                url,
                timeout=(self.connect_timeout_s, self.read_timeout_s),
                headers={"Authorization": self.key.header()},
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _not_billed(transport_error(exc)) from None
        text = self.key.redact(response.text)
        self._trace(f"<- HTTP {response.status_code} {text[:300]}")
        try:
            payload: Any = self.key.scrub(json.loads(text))
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            raise _not_billed(non_json_error(response, text))
        failed = (
            not 200 <= response.status_code < 300
            or payload.get("code") not in (0, None)
            or "error" in payload
        )
        if failed:
            error = _not_billed(envelope_error(response, payload, self.key))
            if error.kind == "not_found" or (response.status_code == 404 and error.code is None):
                return None  # this route does not know the task: the next one may
            raise error
        data = payload.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("task_status"), str):
            raise ApiError(
                "the task query's answer has no data.task_status",
                kind="protocol",
                http_status=response.status_code,
            )
        request_id = payload.get("request_id")
        return TaskAnswer(
            task_id,
            action,
            data,
            server_date(response),
            None if request_id is None else str(request_id),
        )

    def _trace(self, line: str) -> None:
        if self.debug is not None:
            print(f"preflight debug: {line}", file=self.debug)


def _not_billed(error: ApiError) -> ApiError:
    """A query bills nothing: an answer lost after the request left (or a 524) is only a
    failure to retry, never `ambiguous`."""
    if error.kind != "ambiguous":
        return error
    message = str(error).split(": a session may have been", 1)[0]
    return ApiError(
        f"{message} (task query; nothing billed)",
        kind="server",
        http_status=error.http_status,
        request_id=error.request_id,
    )
