"""The init-selection client: one requests Session, timeouts, and retries that read Kling's codes.
What an answer amounts to is decided in answers.py; the key lives in credentials.py.

The retry loop is ours, not urllib3's Retry: it must branch on the `code` inside a 429 body, write a
ledger row before every attempt, and retry a billed call whose answer was lost at most once.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import requests

from ..errors import ApiError
from ..ledger.rows import FinishedState
from .answers import (
    check_success,
    envelope_error,
    non_json_error,
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
MAX_RETRY_AFTER_S = 120.0  # a Retry-After beyond this is a refusal in all but name


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
    ambiguous: bool  # an earlier attempt's answer was lost after sending: it may have billed too


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
        from .schemas import validate_response

        url = self.api_base + ROUTE
        ambiguous_retries = 0
        last: ApiError | None = None
        with requests.Session() as session:
            session.headers["User-Agent"] = "preflight"
            for attempt in range(1, self.max_attempts + 1):
                attempt_id = recorder.begin(attempt)
                try:
                    status, payload = self._post(session, url, body)
                    response = check_success(status, payload, validate_response, self.key)
                except ApiError as exc:
                    lost_answer = exc.after_send and exc.kind == "network"
                    state: FinishedState = "ambiguous" if lost_answer else "failed"
                    exc.attempts = attempt
                    exc.ambiguous = lost_answer or ambiguous_retries > 0
                    recorder.finish(
                        attempt_id,
                        Outcome(
                            state,
                            exc.http_status,
                            exc.code,
                            exc.api_message or str(exc),
                            exc.request_id,
                        ),
                    )
                    last = exc
                    if state == "ambiguous":
                        # Billed and no idempotency key: one more try at most, and say so.
                        ambiguous_retries += 1
                        if ambiguous_retries > 1:
                            break
                    elif not exc.retryable:
                        break
                    if attempt < self.max_attempts:
                        self.sleep(self._delay(attempt, exc.retry_after_s))
                    continue
                recorder.finish(
                    attempt_id,
                    Outcome(
                        "ok",
                        status,
                        0,
                        response.get("message"),
                        response.get("request_id"),
                        str(response["data"]["session_id"]),
                        dict(response["data"]),
                        self.key.fingerprint(),
                    ),
                )
                return InitResponse(
                    session_id=str(response["data"]["session_id"]),
                    request_id=response.get("request_id"),
                    data=dict(response["data"]),
                    http_status=status,
                    attempts=attempt,
                    ambiguous=ambiguous_retries > 0,
                )
        assert last is not None
        if last.retryable and last.attempts >= self.max_attempts:
            last.args = (f"{last} (gave up after {last.attempts} attempts)",)
        raise last

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
        ceiling = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter: many clients do not retry in step

    def _post(self, session: requests.Session, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        self._trace(f"POST {url} Authorization: Bearer *** body={json.dumps(body)}")
        try:
            response = session.post(
                url,
                json=body,
                timeout=(self.connect_timeout_s, self.read_timeout_s),
                headers={"Authorization": self.key.header()},
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(exc) from None
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
