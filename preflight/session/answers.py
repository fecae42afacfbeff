"""ApiError and the classification of what the API sent back: a Kling envelope, CometAPI's own
gateway error, a body that is not JSON, a transport failure, or a success that does not hold up.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3

from ..errors import PreflightError
from .credentials import ApiKey

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
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


def non_json_error(response: requests.Response, text: str) -> ApiError:
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


def envelope_error(response: requests.Response, payload: dict[str, Any], key: ApiKey) -> ApiError:
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
