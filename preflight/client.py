"""The init-selection client: one requests Session, timeouts, retries that read Kling's codes, and
typed ApiErrors for the three error-body shapes (Kling envelope, CometAPI's own, not JSON at all).

The retry loop is ours, not urllib3's Retry: it must branch on the `code` inside a 429 body, write a
ledger row before every attempt, and retry a billed call whose answer was lost at most once.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import os
import random
import re
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3

from .errors import PreflightError, UsageError

DEFAULT_API_BASE = "https://api.cometapi.com"
ROUTE = "/kling/v1/videos/multi-elements/init-selection"
RETRYABLE_CODES = frozenset({1302, 1303})  # rate limits: back off and retry
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0  # a Retry-After beyond this is a refusal in all but name
_HINTS = {
    "auth": "the API key was refused: check COMETAPI_KEY or --api-key-file",
    "account": "the account has a problem: check it on the CometAPI dashboard",
    "arrears": "the account is in arrears: top up your credit",
    "quota": "the resource pack is used up or expired: buy or renew one",
    "permission": "the plan has no access to this model or route: check the plan",
    "invalid": "the request was refused as invalid: see the message for the parameter",
    "not_found": "the video or task does not exist (video_id must be from the last 30 days)",
    "policy": "the platform's policy refused the request",
    "content": "the content safety check failed: change the content",
    "rate_limit": "rate limited: wait a little and try again",
    "allow_list": "this IP address is not on the account's allow-list",
    "server": "the API failed on its side: try again later",
    "network": "the API could not be reached: check the network and --api-base",
    "refused": "the API refused the video: see the message",
    "protocol": "the API answered something this client does not understand",
}
_CODE_KINDS = {
    **dict.fromkeys(range(1000, 1005), "auth"),
    1100: "account",
    1101: "arrears",
    1102: "quota",
    1103: "permission",
    1200: "invalid",
    1201: "invalid",
    1203: "not_found",
    1300: "policy",
    1301: "content",
    1302: "rate_limit",
    1303: "rate_limit",
    1304: "allow_list",
    5000: "server",
    5001: "server",
    5002: "server",
}


class ApiKey:
    """The CometAPI key. Its text is reachable only through header(); repr and str hide it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def header(self) -> str:
        return f"Bearer {self._value}"

    def redact(self, text: str) -> str:
        """Text with the key replaced, for anything a server might have echoed back."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__


def load_api_key(key_file: str | None = None) -> ApiKey:
    """The key from --api-key-file (which must not be world-readable) or $COMETAPI_KEY."""
    if key_file:
        try:
            info = os.stat(key_file)
            if info.st_mode & stat.S_IROTH:
                raise UsageError(
                    f"{key_file} is readable by everyone: run chmod 600 {key_file} first"
                )
            with open(key_file, encoding="utf-8") as f:
                value = f.read().strip()
        except FileNotFoundError:
            raise UsageError(f"API key file not found: {key_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the API key file {key_file}: {exc}") from None
        if not value:
            raise UsageError(f"the API key file {key_file} is empty")
        return ApiKey(value)
    value = os.environ.get("COMETAPI_KEY", "").strip()
    if not value:
        raise UsageError("no API key: set COMETAPI_KEY or pass --api-key-file FILE")
    return ApiKey(value)


def resolve_api_base(value: str | None = None) -> str:
    """--api-base, else $PREFLIGHT_API_BASE, else CometAPI; https unless the host is loopback."""
    base = (value or os.environ.get("PREFLIGHT_API_BASE") or DEFAULT_API_BASE).rstrip("/")
    parts = urlsplit(base)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"the API base must be an http(s) URL, not {base!r}")
    if parts.scheme == "http" and not _is_loopback(host):
        raise UsageError(f"the API base must use https (plain http only for loopback): {base}")
    return base


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiError(PreflightError):
    """The API refused or failed. Carries what the server said; never the key."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        http_status: int | None = None,
        code: int | str | None = None,
        api_message: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        after_send: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.http_status = http_status
        self.code = code
        self.api_message = api_message
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.after_send = after_send  # the body reached the server; a session may exist
        self.attempts = 1
        self.ambiguous = False

    @property
    def hint(self) -> str:
        return _HINTS.get(self.kind, "")

    @property
    def retryable(self) -> bool:
        # Terminal 429 codes (1100-1102, 1304) have kinds of their own, so rate_limit is only
        # 1302/1303, a 429 without a Kling code, or CometAPI's own rate limit.
        return self.kind in ("rate_limit", "server", "network")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": str(self),
            "http_status": self.http_status,
            "code": self.code,
            "api_message": self.api_message,
            "request_id": self.request_id,
            "hint": self.hint,
            "attempts": self.attempts,
            "ambiguous": self.ambiguous,
        }


@dataclass(frozen=True)
class Outcome:
    """How one HTTP attempt ended, for the ledger row written before it."""

    state: str  # ok, failed, ambiguous
    http_status: int | None = None
    code: int | str | None = None
    message: str | None = None
    request_id: str | None = None
    session_id: str | None = None


class Recorder(Protocol):
    def begin(self, attempt_no: int) -> int:
        """Record that attempt `attempt_no` is about to be sent; return its id."""

    def finish(self, attempt_id: int, outcome: Outcome) -> None:
        """Record how the attempt ended."""


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
        from .request import validate_response

        url = self.api_base + ROUTE
        ambiguous_retries = 0
        last: ApiError | None = None
        with requests.Session() as session:
            session.headers["User-Agent"] = "preflight"
            for attempt in range(1, self.max_attempts + 1):
                attempt_id = recorder.begin(attempt)
                try:
                    status, payload = self._post(session, url, body)
                    response = _success(status, payload, validate_response, self.key)
                except ApiError as exc:
                    lost_answer = exc.after_send and exc.kind == "network"
                    state = "ambiguous" if lost_answer else "failed"
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
            raise _transport_error(exc) from None
        text = self.key.redact(response.text)
        self._trace(f"<- HTTP {response.status_code} {text[:300]}")
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = None
        if payload is None or not isinstance(payload, dict):
            raise _non_json(response, text)
        if (
            not 200 <= response.status_code < 300
            or payload.get("code") not in (0, None)
            or ("error" in payload)
        ):
            raise _envelope_error(response, payload, self.key)
        return response.status_code, payload

    def _trace(self, line: str) -> None:
        if self.debug is not None:
            print(f"preflight debug: {line}", file=self.debug)


def _success(
    status: int, payload: dict[str, Any], validate: Callable[[object], list[Any]], key: ApiKey
) -> dict[str, Any]:
    problems = validate(payload)
    if problems:
        first = problems[0]
        raise ApiError(
            f"the API's answer does not match the response schema at {first.path}: {first.message}",
            kind="protocol",
            http_status=status,
            request_id=_str(payload.get("request_id")),
            after_send=True,
        )
    data = payload.get("data") or {}
    request_id = _str(payload.get("request_id"))
    if data.get("status") not in (0, None):
        message = key.redact(str(payload.get("message") or "the video was not accepted"))
        raise ApiError(
            f"the API refused the video (data.status {data.get('status')}): {message}",
            kind="refused",
            http_status=status,
            code=0,
            api_message=message,
            request_id=request_id,
            after_send=True,
        )
    if not str(data.get("session_id") or ""):
        raise ApiError(
            "the API said success but sent no session_id",
            kind="protocol",
            http_status=status,
            request_id=request_id,
            after_send=True,
        )
    return payload


def _transport_error(exc: requests.RequestException) -> ApiError:
    # Whether the body reached the server decides whether a retry could open a second session.
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)
    not_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(
        inner, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    )
    if not_sent:
        return ApiError("could not connect to the API", kind="network")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ApiError(
            "the API did not answer in time after the request was sent",
            kind="network",
            after_send=True,
        )
    return ApiError(
        "the connection to the API dropped before it answered", kind="network", after_send=True
    )


def _non_json(response: requests.Response, text: str) -> ApiError:
    first = re.sub(r"<[^>]+>", " ", text).strip().splitlines()
    line = re.sub(r"\s+", " ", first[0]).strip()[:120] if first else "(empty body)"
    status = response.status_code
    kind = (
        "server"
        if status in RETRYABLE_STATUS
        else "rate_limit"
        if status == 429
        else ("auth" if status == 401 else "protocol")
    )
    return ApiError(
        f"HTTP {status} and a body that is not JSON: {line}",
        kind=kind,
        http_status=status,
        retry_after_s=_retry_after(response),
        after_send=True,
    )


def _envelope_error(response: requests.Response, payload: dict[str, Any], key: ApiKey) -> ApiError:
    status = response.status_code
    retry_after = _retry_after(response)
    if isinstance(payload.get("error"), dict):  # CometAPI's own gateway error
        err = payload["error"]
        message = key.redact(str(err.get("message") or "gateway error"))
        kind = (
            "auth"
            if status == 401
            else "rate_limit"
            if status == 429
            else "server"
            if status >= 500
            else "quota"
            if status == 402
            else "invalid"
        )
        return ApiError(
            f"CometAPI refused the request (HTTP {status}): {message}",
            kind=kind,
            http_status=status,
            code=_str(err.get("code")),
            api_message=message,
            retry_after_s=retry_after,
            after_send=True,
        )
    code = payload.get("code")
    code_int = code if isinstance(code, int) else None
    message = key.redact(str(payload.get("message") or ""))
    kind = _CODE_KINDS.get(code_int or -1) or (
        "rate_limit"
        if status == 429
        else "server"
        if status in RETRYABLE_STATUS
        else "auth"
        if status == 401
        else "invalid"
    )
    if status in RETRYABLE_STATUS and kind not in ("server",):
        kind = "server"
    label = f"code {code}" if code is not None else f"HTTP {status}"
    return ApiError(
        f"the API refused the request ({label}, HTTP {status}): {message}".rstrip(": "),
        kind=kind,
        http_status=status,
        code=code_int,
        api_message=message,
        request_id=_str(payload.get("request_id")),
        retry_after_s=retry_after,
        after_send=True,
    )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def debug_stream(enabled: bool) -> IO[str] | None:
    return sys.stderr if enabled else None
