"""The classification of what the API sent back into ApiErrors: a Kling envelope, CometAPI's own
gateway error, a body that is not JSON, a transport failure, or a success that does not hold up;
and the two headers the client acts on, `Retry-After` and `Date` (the API's clock).
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import requests
import urllib3

from ..errors import ApiError, ApiErrorKind
from .credentials import ApiKey

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
# 524 is Cloudflare's "a timeout occurred": the origin *got* the request and did not answer within
# 100 s, so it may well have opened (and billed) a session. CometAPI's guidance lists it beside
# 504, but a billed call without an idempotency key cannot be sent again on a maybe.
AMBIGUOUS_STATUS = frozenset({524})
# Where a `Date` header is believed: outside these years it is a broken clock, not the API's.
_SANE_YEARS = range(2020, 2200)
_CODE_KINDS: dict[int, ApiErrorKind] = {
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


def check_success(
    status: int, payload: dict[str, Any], validate: Callable[[object], list[Any]], key: ApiKey
) -> dict[str, Any]:
    """The payload of a 2xx answer with code 0, or the ApiError its content amounts to."""
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


def transport_error(exc: requests.RequestException) -> ApiError:
    # Whether the body reached the server decides whether a retry could open a second session.
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)
    not_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(
        inner, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    )
    # A TLS handshake fails before urllib3 writes a byte of the request (it connects first).
    not_sent = not_sent or isinstance(exc, requests.exceptions.SSLError)
    if not_sent:
        return ApiError("could not connect to the API", kind="network")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ambiguous_error("the API did not answer in time after the request was sent")
    return ambiguous_error("the connection to the API dropped after the request was sent")


def ambiguous_error(
    what: str, *, http_status: int | None = None, request_id: str | None = None
) -> ApiError:
    """The request may have reached the API and opened a billed session we never heard of: it is
    not sent again (ApiError kind `ambiguous`), and the message says how to send it anyway."""
    return ApiError(
        f"{what}: a session may have been opened (and billed); not sent again"
        " (--force sends again)",
        kind="ambiguous",
        http_status=http_status,
        request_id=request_id,
        after_send=True,
    )


def non_json_error(response: requests.Response, text: str) -> ApiError:
    first = re.sub(r"<[^>]+>", " ", text).strip().splitlines()
    line = re.sub(r"\s+", " ", first[0]).strip()[:120] if first else "(empty body)"
    status = response.status_code
    if status in AMBIGUOUS_STATUS:
        return ambiguous_error(
            f"HTTP {status} (the API got the request, then timed out): {line}", http_status=status
        )
    kind: ApiErrorKind = (
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


def envelope_error(response: requests.Response, payload: dict[str, Any], key: ApiKey) -> ApiError:
    status = response.status_code
    if status in AMBIGUOUS_STATUS:
        return ambiguous_error(
            f"HTTP {status} (the API got the request, then timed out)",
            http_status=status,
            request_id=_str(payload.get("request_id")),
        )
    retry_after = _retry_after(response)
    if isinstance(payload.get("error"), dict):  # CometAPI's own gateway error
        err = payload["error"]
        message = key.redact(str(err.get("message") or "gateway error"))
        gateway_kind: ApiErrorKind = (
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
            kind=gateway_kind,
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


def server_date(response: requests.Response) -> datetime | None:
    """The API's clock at the answer (its `Date` header, UTC), or None if absent or absurd."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110's dates are GMT; -0000 parses naive
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return when if when.year in _SANE_YEARS else None


def _retry_after(response: requests.Response) -> float | None:
    """Seconds the API asks us to wait, or None when the header is absent or means nothing: a
    non-finite or negative number, or text that is neither a number nor an HTTP date."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):  # delta-seconds (float() takes nan, 1_0, -3)
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    # Measured on the API's clock when it sent its Date, so a skewed host waits the same.
    now = server_date(response) or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
