"""What the sandbox answers, before it is sent: scripted Faults, Kling's code table and envelope,
and CometAPI's own error shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

# API.md's error table: the default message of each Kling code, and the HTTP status it comes with.
CODE_MESSAGES: dict[int, str] = {
    1000: "authentication failed",
    1001: "authentication failed: invalid key",
    1002: "authentication failed: key not yet valid",
    1003: "authentication failed: key expired",
    1004: "authentication failed",
    1100: "account exception",
    1101: "account in arrears",
    1102: "resource pack used up or expired",
    1103: "no permission for this resource or model",
    1200: "invalid request",
    1201: "invalid parameter",
    1203: "resource does not exist",
    1300: "platform policy triggered",
    1301: "content safety check failed",
    1302: "too many requests",
    1303: "concurrency or resource limit reached",
    1304: "IP not on the allow-list",
    5000: "server error",
    5001: "server unavailable (maintenance)",
    5002: "server timeout",
}
# A status-only Fault still answers a Kling envelope, so it needs a plausible code for its status.
_STATUS_CODES = {400: 1200, 401: 1001, 403: 1103, 404: 1203, 429: 1302, 503: 5001, 504: 5002}
# CometAPI's own error codes are strings; these stand in for a status-only comet_error Fault.
_COMET_CODES = {
    401: "invalid_api_key",
    402: "insufficient_quota",
    403: "forbidden",
    429: "rate_limit_exceeded",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass(frozen=True)
class Fault:
    """One scripted answer; Sandbox.faults is a FIFO consumed one per POST to ROUTE.

    `status` answers that status without opening a session (in the envelope, `comet_error` or raw
    `body` shape); `drop` hangs up without an answer; `delay_s` answers late. `after_processing`
    first opens (and bills) the session normally, then delays, drops or answers `status`: the
    ambiguous case where the client never learns the session it paid for.
    """

    status: int = 0  # HTTP status to answer with; 0 = behave normally for this request
    code: int | None = None  # Kling code of the envelope; a default per status when None
    message: str = ""  # the envelope's (or comet error's) message; a default per code if empty
    body: str | None = None  # a raw body instead (e.g. an HTML gateway page), sent as text/html
    comet_error: bool = False  # CometAPI's own shape {"error": {message, type, param, code}}
    retry_after: str | None = None  # Retry-After header value
    delay_s: float = 0.0  # sleep this long before answering (slow answer)
    drop: bool = False  # close the connection without any answer
    after_processing: bool = False  # open (and bill) the session first, then delay/drop/status

    def __post_init__(self) -> None:
        # A Fault that cannot do what it says would make a test pass for the wrong reason.
        if self.status and not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be 0 or an HTTP status, not {self.status}")
        shaped = self.code is not None or self.message or self.body is not None
        if not self.status and (shaped or self.comet_error or self.retry_after is not None):
            raise ValueError("Fault: code, message, body, comet_error and retry_after need status")
        if self.body is not None and (self.comet_error or self.code is not None):
            raise ValueError("Fault: a raw body excludes code and comet_error")
        if self.drop and self.status:
            raise ValueError("Fault: drop sends no answer, so it cannot have a status")
        if self.delay_s < 0:
            raise ValueError("Fault.delay_s must not be negative")
        if self.after_processing and not (self.drop or self.delay_s or self.status):
            raise ValueError("Fault.after_processing needs drop, delay_s or status")


@dataclass(frozen=True)
class Answer:
    """A response decided but not yet sent."""

    status: int
    payload: dict[str, Any] | None = None  # JSON body
    raw: str | None = None  # or a text/html body
    code: int | None = None
    session_id: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def envelope(status: int, code: int, message: str = "") -> Answer:
    payload = {
        "code": code,
        "message": message or CODE_MESSAGES.get(code, "error"),
        "request_id": uuid.uuid4().hex,
    }
    return Answer(status, payload, code=code)


def comet_error(status: int, message: str, code: str) -> Answer:
    error = {"message": message, "type": "comet_api_error", "param": "", "code": code}
    return Answer(status, {"error": error})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:  # a status Python does not name, e.g. 599
        return "error"


def fault_answer(fault: Fault, session_id: str | None) -> Answer:
    """The answer a status Fault scripts, in the shape it names."""
    status = fault.status
    headers = (("Retry-After", fault.retry_after),) if fault.retry_after is not None else ()
    if fault.body is not None:
        answer = Answer(status, raw=fault.body)
    elif fault.comet_error:
        message = fault.message or _phrase(status)
        name = str(fault.code) if fault.code is not None else _COMET_CODES.get(status, "error")
        answer = comet_error(status, message, name)
    else:
        code = fault.code
        if code is None:
            code = _STATUS_CODES.get(status, 5000 if status >= 500 else 1200)
        answer = envelope(status, code, fault.message)
    return Answer(answer.status, answer.payload, answer.raw, answer.code, session_id, headers)
