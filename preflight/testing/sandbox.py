"""A loopback stand-in of CometAPI's init-selection route: real auth, body and video rules.

Nothing is billed: it judges video_url with the preflight library and answers scripted Faults.
"""

from __future__ import annotations

import argparse
import hmac
import json
import secrets
import shlex
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..pipeline import CheckOptions, check_one
from ..policy import Policy, load_policy
from ..session.client import ROUTE
from ..session.schemas import validate_request
from .answers import (
    ECHO_MARK,
    Answer,
    Fault,
    comet_error,
    encode_echo,
    envelope,
    fault_answer,
)
from .loopback import (
    LoopbackHandler,
    LoopbackHTTPServer,
    LoopbackServer,
    hang_up,
    serve_until_interrupt,
)
from .tasks import KlingTask, answer_query, demo_tasks, match_task_route, queries_of

__all__ = [
    "DEMO_KEY",
    "MAX_BODY_BYTES",
    "Arrival",
    "Sandbox",
    "SandboxRequest",
    "main",
    "serve",
]

DEMO_KEY = "sandbox-demo-key"
MAX_BODY_BYTES = 1024 * 1024  # an init-selection body is a few hundred bytes; more is an abuse
_REDACTED = "[redacted]"

# What a video_id session reports: the API parsed a 5 s 1280x720 30 fps video (API.md's example).
_ID_FACTS: dict[str, Any] = {
    "fps": 30.0,
    "original_duration": 5000,
    "width": 1280,
    "height": 720,
    "total_frame": 150,
}


@dataclass(frozen=True)
class SandboxRequest:
    """One request as the sandbox answered it; status 0 means it hung up without an answer."""

    path: str  # the request target as sent, query string included
    authorized: bool  # the exact `Authorization: Bearer <key>` header was presented
    body: Any  # the parsed JSON body, or None (no body, or not JSON)
    status: int
    code: int | None  # the Kling code answered (0 on success), None for other shapes
    session_id: str | None  # the session this request opened, also when the answer was lost
    method: str = "POST"


@dataclass(frozen=True)
class Arrival:
    """A POST of ROUTE as it arrived, before anything was decided or answered: what a billing
    counter sees, including requests whose client died before the answer."""

    body: Any  # the parsed JSON body, or None
    authorized: bool
    at: float  # time.monotonic() when its body had been read


class _Handler(LoopbackHandler):
    server_version = "preflight-sandbox"
    server: LoopbackHTTPServer[Sandbox]

    def _handle(self) -> None:
        sandbox = self.server.owner
        raw = self._read_body()
        if raw is None:  # unreadable framing: answered and the connection is closing
            return
        body = _parse_json(raw)
        authorized = self._authorized()
        queried = match_task_route(urlsplit(self.path).path) if self.command == "GET" else None
        if queried is not None:
            presented = self.headers.get("Authorization", "")
            answer = answer_query(sandbox, *queried, presented=presented, authorized=authorized)
            self._send(answer, body, authorized)
            return
        if self.command != "POST" or urlsplit(self.path).path != ROUTE:
            self._send(envelope(404, 1203), body, authorized)
            return
        sandbox._arrived(Arrival(body, authorized, time.monotonic()))
        fault = sandbox._next_fault()
        try:
            self._answer_route(fault, body, authorized)
        except Exception as exc:  # a sandbox bug: tell the client, never print to stderr
            answer = envelope(500, 5000, f"sandbox internal error: {type(exc).__name__}: {exc}")
            self._send(answer, body, authorized)

    # Every method reaches one handler: anything but POST of ROUTE or a task query (GET, tasks.py)
    # answers 404 code 1203.
    do_POST = do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _answer_route(self, fault: Fault, body: Any, authorized: bool) -> None:
        sandbox = self.server.owner
        if not fault.after_processing:
            if not sandbox._hold(fault):
                self._drop(body, authorized, None)
                return
            if fault.drop:
                self._drop(body, authorized, None)
                return
            if fault.status:
                self._send(fault_answer(fault, None), body, authorized)
                return
        answer = self._process(body)
        if fault.on_answer is not None:
            fault.on_answer()
        if fault.after_processing:
            # The session (if any) is opened and billed; only the answer goes astray.
            if not sandbox._hold(fault):
                self._drop(body, authorized, answer.session_id)
                return
            if fault.drop:
                self._drop(body, authorized, answer.session_id)
                return
            if fault.status:
                answer = fault_answer(fault, answer.session_id)
        self._send(answer, body, authorized)

    def _process(self, body: Any) -> Answer:
        """What the API answers to a POST of ROUTE, opening a session on success."""
        sandbox = self.server.owner
        presented = self.headers.get("Authorization", "").strip()
        if presented in ("", "Bearer"):
            return comet_error(401, "missing api key", "missing_api_key")
        if not self._authorized():
            return envelope(401, 1001)
        if body is None:
            return envelope(400, 1201, "invalid parameter: the request body is not JSON")
        problems = validate_request(body)
        if problems:
            first = problems[0]
            where = "the request body" if first.path == "$" else first.path
            return envelope(400, 1201, f"invalid parameter: {where}: {first.message}")
        if "video_url" in body:
            return sandbox._judge_url(body)
        if body["video_id"] in sandbox.missing_ids or body["task_id"] in sandbox.missing_ids:
            return envelope(404, 1203, "resource does not exist: no such video_id or task_id")
        return sandbox._open_session(body, _ID_FACTS)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header on the stand-in's clock, which a test may set off the host's.
        when = time.time() if timestamp is None else timestamp
        return super().date_time_string(when + self.server.owner.clock_offset_s)

    def _authorized(self) -> bool:
        presented = self.headers.get("Authorization", "")
        # Constant time, as a real gateway would compare secrets.
        return hmac.compare_digest(presented.encode(), self.server.owner._auth_value)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            # Chunked bodies are not read here, so the connection's framing is lost: close it.
            self.close_connection = True
            self._send(envelope(400, 1200, "send the body with a Content-Length"), None, False)
            return None
        length_header = self.headers.get("Content-Length", "0").strip()
        if not length_header.isdigit() or int(length_header) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(envelope(400, 1200, "bad or too large Content-Length"), None, False)
            return None
        return self.rfile.read(int(length_header))

    def _send(self, answer: Answer, body: Any, authorized: bool) -> None:
        sandbox = self.server.owner
        presented = self.headers.get("Authorization", "")
        if answer.raw is not None:
            text = answer.raw
            content_type = "text/html; charset=utf-8"
        else:
            payload = sandbox._redact(answer.payload or {}, presented)
            text = json.dumps(payload, ensure_ascii=False)
            content_type = "application/json"
        # Only a scripted echo Fault puts the key back, after the redaction above.
        echoed = encode_echo(presented.removeprefix("Bearer").strip(), answer.echo_as)
        data = text.replace(ECHO_MARK, echoed).encode()
        sandbox._log(self._request(body, authorized, answer.status, answer.code, answer))
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value.replace(ECHO_MARK, echoed))
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client gave up (e.g. its read timeout during a delay)
            self.close_connection = True

    def _drop(self, body: Any, authorized: bool, session_id: str | None) -> None:
        # Logged before hanging up, so a client that sees the error also sees the log row.
        dropped = Answer(0, session_id=session_id)
        self.server.owner._log(self._request(body, authorized, 0, None, dropped))
        self.close_connection = True
        hang_up(self.connection)

    def _request(
        self, body: Any, authorized: bool, status: int, code: int | None, answer: Answer
    ) -> SandboxRequest:
        return SandboxRequest(
            self.path, authorized, body, status, code, answer.session_id, self.command
        )


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


class Sandbox(LoopbackServer):
    """The init-selection route on loopback; `faults`, `requests`, `arrivals` and `sessions` are
    for tests. `clock_offset_s` moves the Date header of its answers off this host's clock."""

    _label = "Sandbox"

    def __init__(
        self,
        *,
        key: str = DEMO_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_private_urls: bool = True,
        faults: list[Fault] | None = None,
        missing_ids: frozenset[str] = frozenset(),
        clock_offset_s: float = 0.0,
        tasks: dict[str, KlingTask] | None = None,
        task_faults: list[Fault] | None = None,
    ) -> None:
        if not key:
            raise ValueError("the sandbox needs a non-empty key")
        self.key = key
        self.allow_private_urls = allow_private_urls
        self.missing_ids = missing_ids
        self.clock_offset_s = clock_offset_s
        self.faults: list[Fault] = list(faults or [])  # tests append; handlers pop under _lock
        # The tasks its query route knows (tasks.py; default: demo_tasks, and any other task id
        # is the catch-all) and that route's scripted answers, one per GET, like `faults`.
        self.tasks: dict[str, KlingTask] = tasks if tasks is not None else {}
        self.any_task = tasks is None
        self.task_faults: list[Fault] = list(task_faults or [])
        self._auth_value = f"Bearer {key}".encode()
        self._policy: Policy = load_policy()
        self._requests: list[SandboxRequest] = []
        self._arrivals: list[Arrival] = []
        self._sessions: dict[str, dict[str, Any]] = {}
        super().__init__(host, port, _Handler)
        if tasks is None:
            self.tasks = demo_tasks(f"{self.base_url}/demo.mp4")

    @property
    def url(self) -> str:
        """The full URL of the init-selection route."""
        return self.base_url + ROUTE

    @property
    def requests(self) -> list[SandboxRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def arrivals(self) -> list[Arrival]:
        """Every POST of ROUTE, counted as it arrived (before its answer, if it got one)."""
        with self._lock:
            return list(self._arrivals)

    def posts(self, body: dict[str, Any] | None = None) -> int:
        """How many POSTs of ROUTE arrived (with exactly this body, if given): each may bill."""
        return sum(1 for a in self.arrivals if body is None or a.body == body)

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        """Every session opened, and so billed, including those whose answer was lost."""
        with self._lock:
            return {sid: dict(session) for sid, session in self._sessions.items()}

    def gets(self, task_id: str | None = None) -> list[str]:
        """The paths of the task queries answered (of this task, if given), in order."""
        return queries_of(self.requests, task_id)

    # The methods below are the handler's side of the sandbox.

    def _next_fault(self) -> Fault:
        with self._lock:
            return self.faults.pop(0) if self.faults else Fault()

    def _arrived(self, arrival: Arrival) -> None:
        with self._lock:
            self._arrivals.append(arrival)

    def _hold(self, fault: Fault) -> bool:
        """Wait out the fault's delay, then its Event; False if the sandbox is stopping."""
        if fault.delay_s and not self._pause(fault.delay_s):
            return False
        if fault.until is None:
            return True
        while not fault.until.wait(0.05):
            if self._stopping.is_set():
                return False
        return True

    def _log(self, request: SandboxRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _is_routine(self, error: BaseException | None) -> bool:
        # Quiet by contract: a client hanging up is routine, and handler bugs answer 500 already.
        return True

    def _redact(self, payload: dict[str, Any], presented: str) -> dict[str, Any]:
        """The payload with both keys cut out of its messages, the only text that quotes input."""
        # A message may quote what the client sent (a bad video_url, say); never let a key out.
        secrets_ = sorted({self.key, presented.removeprefix("Bearer").strip()} - {""}, key=len)

        def clean(text: str) -> str:
            for secret in reversed(secrets_):  # longest first, so no key survives in part
                text = text.replace(secret, _REDACTED)
            return text

        cleaned = dict(payload)
        if isinstance(cleaned.get("message"), str):
            cleaned["message"] = clean(cleaned["message"])
        error = cleaned.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            cleaned["error"] = {**error, "message": clean(error["message"])}
        return cleaned

    def _judge_url(self, body: dict[str, Any]) -> Answer:
        url = str(body["video_url"])
        options = CheckOptions(allow_private_urls=self.allow_private_urls)
        result = check_one(url, self._policy, options=options)  # never raises for a bad URL
        if result.verdict == "error":
            reason = result.error.message if result.error else "unknown error"
            return envelope(400, 1201, f"video could not be downloaded or read: {reason}")
        if result.verdict == "reject":
            first = result.violations[0].message if result.violations else "rejected"
            # HTTP 200 and code 0 with a non-zero data.status: the API refused the video itself.
            payload = {
                "code": 0,
                "message": f"video does not meet requirements: {first}",
                "request_id": uuid.uuid4().hex,
                "data": {"status": 1},
            }
            return Answer(200, payload, code=0)
        facts = result.facts
        parsed: dict[str, Any] = {}
        if facts is not None:
            parsed = {
                "fps": facts.fps,
                # The API reports milliseconds; the probe, seconds.
                "original_duration": None
                if facts.duration is None
                else round(facts.duration * 1000),
                "width": facts.width,
                "height": facts.height,
                "total_frame": facts.frame_count,
            }
        # A fact the probe could not read is left out rather than sent as null (schema: numbers).
        return self._open_session(body, {k: v for k, v in parsed.items() if v is not None})

    def _open_session(self, body: dict[str, Any], facts: dict[str, Any]) -> Answer:
        request_id = uuid.uuid4().hex
        with self._lock:
            while True:  # 18 decimal digits, as in Kling's examples; unique within the sandbox
                session_id = str(10**17 + secrets.randbelow(9 * 10**17))
                if session_id not in self._sessions:
                    break
            data = {
                "status": 0,
                "session_id": session_id,
                **facts,
                "normalized_video": f"{self.base_url}/normalized/{session_id}.mp4",
                "final_unit_deduction": "1",
            }
            self._sessions[session_id] = {
                "session_id": session_id,
                "request_id": request_id,
                "body": body,
                "data": data,
                "opened_at": time.time(),  # unix seconds; sessions live 24 hours at the API
            }
        payload = {"code": 0, "message": "success", "request_id": request_id, "data": data}
        return Answer(200, payload, code=0, session_id=session_id)


def serve(sandbox: Sandbox) -> None:
    """Print the base URL and key as shell lines, then serve until ^C (`preflight sandbox`)."""
    # Quoted, so `eval` of these lines is safe whatever the key holds.
    serve_until_interrupt(
        sandbox,
        lambda: [
            f"PREFLIGHT_API_BASE={shlex.quote(sandbox.base_url)}",
            f"COMETAPI_KEY={shlex.quote(sandbox.key)}",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m preflight.testing.sandbox`: the same as `preflight sandbox`, without the rest
    of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m preflight.testing.sandbox",
        description="Serve a loopback stand-in of CometAPI's init-selection route.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--key", default=DEMO_KEY, help=f"the accepted key (default {DEMO_KEY})")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(key=args.key, port=args.port)
    except (ValueError, OverflowError, OSError) as error:  # OverflowError: a port past 65535
        parser.error(str(error))
    serve(sandbox)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
