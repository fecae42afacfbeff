"""What the sandbox answers, before it is sent: scripted Faults, Kling's code table and envelope,
and CometAPI's own error shape.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
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


# Where an echoing Fault puts the key it was sent, and the encodings a careless server uses.
ECHO_PLACES = ("code", "request_id", "message", "param", "type", "header", "body")
ECHO_FORMS = ("plain", "json_escaped", "slash_escaped", "url", "base64")
# What Cloudflare sends in front of an origin that took over 100 s (abridged): HTML, not JSON.
CLOUDFLARE_524 = (
    "<!DOCTYPE html><html><head><title>api.cometapi.com | 524: A timeout occurred</title></head>"
    "<body><h1>A timeout occurred</h1><p>Error code 524</p><p>The origin web server timed out"
    " responding to this request.</p></body></html>"
)
ECHO_MARK = "@@ECHO@@"  # stands for the key in the answer until the raw text is written


@dataclass(frozen=True)
class Fault:
    """One scripted answer; Sandbox.faults is a FIFO consumed one per POST to ROUTE.

    `status` answers that status without opening a session (in the envelope, `comet_error` or raw
    `body` shape; a 524 as Cloudflare's HTML page); `drop` hangs up without an answer; `delay_s`
    answers late; `until` holds the answer until the test sets that Event (a first answer that
    comes when the test says so). `after_processing` first opens (and bills) the session normally,
    then delays, holds, drops or answers `status`: the ambiguous case where the client never
    learns the session it paid for.
    """

    status: int = 0  # HTTP status to answer with; 0 = behave normally for this request
    code: int | None = None  # Kling code of the envelope; a default per status when None
    message: str = ""  # the envelope's (or comet error's) message; a default per code if empty
    body: str | None = None  # a raw body instead (e.g. an HTML gateway page), sent as text/html
    comet_error: bool = False  # CometAPI's own shape {"error": {message, type, param, code}}
    retry_after: str | None = None  # Retry-After header value
    delay_s: float = 0.0  # sleep this long before answering (slow answer)
    until: threading.Event | None = None  # then wait for this Event too (never set: no answer)
    drop: bool = False  # close the connection without any answer
    after_processing: bool = False  # open (and bill) the session first, then delay/drop/status
    # A careless server: echo the key it was sent (the Authorization header's) in this place of
    # the answer (ECHO_PLACES), encoded as echo_as (ECHO_FORMS). "param" and "type" are fields
    # of comet_error; "body" answers text/html.
    echo: str = ""
    echo_as: str = "plain"
    # Called in the handler after the request was processed (its session opened and billed) and
    # before the answer is sent: a test's hook to change the world meanwhile (fill a disk, say).
    on_answer: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        # A Fault that cannot do what it says would make a test pass for the wrong reason.
        if self.status and not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be 0 or an HTTP status, not {self.status}")
        shaped = self.code is not None or self.message or self.body is not None
        if not self.status and (
            shaped or self.comet_error or self.retry_after is not None or self.echo
        ):
            raise ValueError(
                "Fault: code, message, body, comet_error, retry_after and echo need status"
            )
        if self.echo and self.echo not in ECHO_PLACES:
            raise ValueError(f"Fault.echo must be one of {ECHO_PLACES}, not {self.echo!r}")
        if self.echo_as not in ECHO_FORMS:
            raise ValueError(f"Fault.echo_as must be one of {ECHO_FORMS}, not {self.echo_as!r}")
        if self.echo in ("param", "type") and not self.comet_error:
            raise ValueError("Fault: echo param and type are fields of comet_error")
        if self.echo == "body" and (self.body is not None or self.comet_error):
            raise ValueError("Fault: echo body makes the body itself")
        if self.on_answer is not None and self.status and not self.after_processing:
            raise ValueError("Fault: on_answer runs after processing, which a status skips")
        if self.body is not None and (self.comet_error or self.code is not None):
            raise ValueError("Fault: a raw body excludes code and comet_error")
        if self.drop and self.status:
            raise ValueError("Fault: drop sends no answer, so it cannot have a status")
        if self.delay_s < 0:
            raise ValueError("Fault.delay_s must not be negative")
        if self.after_processing and not (
            self.drop or self.delay_s or self.status or self.until is not None
        ):
            raise ValueError("Fault.after_processing needs drop, delay_s, until or status")


@dataclass(frozen=True)
class Answer:
    """A response decided but not yet sent."""

    status: int
    payload: dict[str, Any] | None = None  # JSON body
    raw: str | None = None  # or a text/html body
    code: int | None = None
    session_id: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    echo: str = ""  # the Fault's echo and echo_as, applied as the answer is written
    echo_as: str = "plain"


def encode_echo(key: str, form: str) -> str:
    """The key as a careless server would write it into JSON text (already JSON-safe)."""
    if form == "json_escaped":
        return "".join(f"\\u{ord(c):04x}" for c in key)
    if form == "slash_escaped":
        return json.dumps(key)[1:-1].replace("/", "\\/")
    if form == "url":
        from urllib.parse import quote

        return quote(key, safe="")
    if form == "base64":  # as in a Basic-style token: misaligned by the "Bearer " before it
        return base64.b64encode(f"Bearer {key}".encode()).decode()
    return json.dumps(key)[1:-1]


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
    elif status == 524 and not fault.comet_error and fault.code is None and not fault.echo:
        answer = Answer(status, raw=CLOUDFLARE_524)
    elif fault.echo == "body":
        answer = Answer(status, raw=f"<html><h1>{status}</h1> you sent Bearer {ECHO_MARK}</html>")
    elif fault.comet_error:
        message = fault.message or _phrase(status)
        name = str(fault.code) if fault.code is not None else _COMET_CODES.get(status, "error")
        answer = comet_error(status, message, name)
    else:
        code = fault.code
        if code is None:
            code = _STATUS_CODES.get(status, 5000 if status >= 500 else 1200)
        answer = envelope(status, code, fault.message)
    payload = answer.payload
    if payload is not None and fault.echo in ("code", "request_id", "message", "param", "type"):
        payload = _with_mark(payload, fault.echo)
    if fault.echo == "header":
        headers = (*headers, ("X-Echo-Authorization", f"Bearer {ECHO_MARK}"))
    return Answer(
        answer.status,
        payload,
        answer.raw,
        answer.code,
        session_id,
        headers,
        fault.echo,
        fault.echo_as,
    )


def _with_mark(payload: dict[str, Any], place: str) -> dict[str, Any]:
    marked = dict(payload)
    target = marked
    if isinstance(marked.get("error"), dict):  # CometAPI's shape keeps its fields in "error"
        target = marked["error"] = dict(marked["error"])
    if place == "message":
        target["message"] = f"{target.get('message', '')}: you sent Bearer {ECHO_MARK}"
    else:
        target[place] = ECHO_MARK
    return marked
