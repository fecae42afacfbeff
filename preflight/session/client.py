"""The init-selection client: one requests Session, timeouts, and retries that read Kling's codes.
What an answer amounts to is decided in answers.py; the key lives in credentials.py.

The retry loop is ours, not urllib3's Retry: it must branch on the `code` inside a 429 body, write a
ledger row before every attempt, and never send a billed call again once its answer was lost after
it left (the call has no idempotency key: a second one could open and bill a second session).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol

import requests

from ..errors import ApiError
from ..ledger.rows import FinishedState
from .answers import (
    check_success,
    envelope_error,
    non_json_error,
    server_date,
    transport_error,
)
from .credentials import ApiKey

__all__ = [
    "MAX_RETRY_AFTER_S",
    "ROUTE",
    "InitClient",
    "InitResponse",
    "Outcome",
    "Recorder",
    "debug_stream",
]

# The one definition of the route; the sandbox (testing/sandbox.py) serves the same path.
ROUTE = "/kling/v1/videos/multi-elements/init-selection"
MAX_RETRY_AFTER_S = 120.0  # a Retry-After beyond this is a refusal in all but name: not waited


def retry_delay(
    attempt: int, retry_after_s: float | None, backoff_s: float, backoff_max_s: float
) -> float | None:
    """How long to wait before the attempt after `attempt`: the answer's Retry-After, else a
    jittered exponential back-off; None when the API asks for more than MAX_RETRY_AFTER_S (that
    is the answer, never a sleep). The init route and the task query (task_query.py) share it."""
    if retry_after_s is not None:
        return None if retry_after_s > MAX_RETRY_AFTER_S else retry_after_s
    ceiling = min(backoff_max_s, backoff_s * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # jitter: many clients do not retry in step


def too_long_to_wait(exc: ApiError) -> ApiError:
    """`exc`, saying that the API asked for a wait longer than this client makes."""
    exc.args = (
        f"{exc} (the API asks to wait {exc.retry_after_s:g} s, more than the"
        f" {MAX_RETRY_AFTER_S:g} s this client waits: try again later)",
    )
    return exc


@dataclass(frozen=True)
class Outcome:
    """How one HTTP attempt ended, for the ledger row written before it."""

    state: FinishedState
    http_status: int | None = None
    code: int | str | None = None
    message: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    data: dict[str, Any] | None = None  # the response's `data` object, when a session opened
    key_fingerprint: str | None = None  # the key it was sent with (ApiKey.fingerprint)
    # The API's clock when it answered (its Date header, UTC); None when nothing was answered or
    # the header was missing. A session's expiry counts from it, not from this host's clock.
    server_date: datetime | None = None


class Recorder(Protocol):
    def begin(self, attempt_no: int) -> int:
        """Record that attempt `attempt_no` is about to be sent; return its id."""

    def finish(self, attempt_id: int, outcome: Outcome) -> None:
        """Record how the attempt ended; with a session_id, record the session in the same
        transaction (it is billed: it must not be recorded half)."""


@dataclass(frozen=True)
class InitResponse:
    session_id: str
    request_id: str | None
    data: dict[str, Any]
    http_status: int
    attempts: int
    ambiguous: bool  # an earlier attempt may have billed too (never, since lost answers stop)
    server_date: datetime | None = None  # the API's Date header on the answer


@dataclass
class InitClient:
    api_base: str
    key: ApiKey = field(repr=False)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 20.0
    debug: IO[str] | None = None  # where to trace requests (Authorization redacted), if anywhere
    sleep: Callable[[float], None] = time.sleep

    def init_selection(self, body: dict[str, Any], recorder: Recorder) -> InitResponse:
        """Send until an answer opens a session, proves nothing was opened (and is not worth
        another try), or may have opened one: that last is never sent again (kind `ambiguous`).
        A Recorder.begin that raises (the claim is lost, say) is let through: nothing was sent.
        """
        from .schemas import validate_response

        url = self.api_base + ROUTE
        with requests.Session() as session:
            session.headers["User-Agent"] = "preflight"
            for attempt in range(1, self.max_attempts + 1):
                attempt_id = recorder.begin(attempt)
                answered: datetime | None = None
                try:
                    response = self._post(session, url, body)
                    answered = server_date(response)
                    status, payload = self._read(response)
                    success = check_success(status, payload, validate_response, self.key)
                except ApiError as exc:
                    exc.attempts = attempt
                    # A 2xx we cannot read may still have opened a session: a maybe, like a loss.
                    maybe_billed = exc.kind == "ambiguous" or (
                        exc.kind == "protocol" and 200 <= (exc.http_status or 0) < 300
                    )
                    exc.ambiguous = maybe_billed
                    recorder.finish(
                        attempt_id,
                        Outcome(
                            "ambiguous" if maybe_billed else "failed",
                            exc.http_status,
                            exc.code,
                            exc.api_message or str(exc),
                            exc.request_id,
                            server_date=answered,
                        ),
                    )
                    if exc.kind == "protocol" and maybe_billed:
                        exc.args = (
                            f"{exc}; a session may have been opened (and billed): not sent again"
                            " (--force sends again)",
                        )
                    if maybe_billed or not exc.retryable:
                        raise
                    if attempt == self.max_attempts:
                        exc.args = (f"{exc} (gave up after {attempt} attempts)",)
                        raise
                    wait = retry_delay(
                        attempt, exc.retry_after_s, self.backoff_s, self.backoff_max_s
                    )
                    if wait is None:
                        raise too_long_to_wait(exc) from None
                    self.sleep(wait)
                    continue
                data = dict(success["data"])
                recorder.finish(
                    attempt_id,
                    Outcome(
                        "ok",
                        status,
                        0,
                        success.get("message"),
                        success.get("request_id"),
                        str(data["session_id"]),
                        data,
                        self.key.fingerprint(),
                        answered,
                    ),
                )
                return InitResponse(
                    session_id=str(data["session_id"]),
                    request_id=success.get("request_id"),
                    data=data,
                    http_status=status,
                    attempts=attempt,
                    ambiguous=False,
                    server_date=answered,
                )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, session: requests.Session, url: str, body: dict[str, Any]) -> requests.Response:
        self._trace(f"POST {url} Authorization: Bearer *** body={json.dumps(body)}")
        try:
            return session.post(
                url,
                json=body,
                timeout=(self.connect_timeout_s, self.read_timeout_s),
                headers={"Authorization": self.key.header()},
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(exc) from None

    def _read(self, response: requests.Response) -> tuple[int, Any]:
        """The status and JSON payload of an answer, or the ApiError it amounts to."""
        # (post() has read the whole body: a body cut off was a transport error there.)
        # Everything the server sends is redacted once, here, before anything else sees it: the
        # raw text for its escaped forms, then every decoded string (code, request_id, message,
        # error.param/type/code) for the forms JSON decoding produced.
        text = self.key.redact(response.text)
        cut = f"{text[:300]}… ({len(text)} characters)" if len(text) > 300 else text
        self._trace(f"<- HTTP {response.status_code} {cut}")
        if self.debug is not None:
            for name, value in response.headers.items():
                self._trace(f"<- {self.key.redact(f'{name}: {value}')}")
        try:
            payload: Any = self.key.scrub(json.loads(text))
        except (ValueError, RecursionError):  # not JSON, or nested deeper than we will walk
            payload = None
        if payload is None or not isinstance(payload, dict):
            raise non_json_error(response, text)
        if (
            not 200 <= response.status_code < 300
            or payload.get("code") not in (0, None)
            or ("error" in payload)
        ):
            raise envelope_error(response, payload, self.key)
        return response.status_code, payload

    def _trace(self, line: str) -> None:
        if self.debug is not None:
            print(f"preflight debug: {line}", file=self.debug)


def debug_stream(enabled: bool) -> IO[str] | None:
    return sys.stderr if enabled else None
