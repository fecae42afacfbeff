"""init_session(): verdict -> request body -> schema -> client -> ledger, for one source.

Nothing is sent unless the pre-flight passed and the body matches the schema; a source with an
unexpired session gets that session back instead of a second, billed one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import (
    ApiError,
    ClaimLost,
    LedgerError,
    SessionUnrecorded,
    UnsettledAttempt,
    UsageError,
    VideoRejected,
    VideoUnreadable,
)
from ..facts import Facts
from ..ledger import AttemptRow, Ledger, SessionRow, default_path
from ..ledger.backend import Claim
from ..pipeline import CheckOptions, check_one
from ..policy import Policy, load_policy
from ..sources import redact_url
from .client import InitClient, Outcome
from .credentials import ApiKey, load_api_key, resolve_api_base
from .result import CrossCheck, InitResult, ServerFacts, cross_check, duration_bucket
from .schemas import validate_request
from .task_check import KlingOptions, check_task, task_client_for
from .task_query import TaskClient

# Query parameters of signed URLs: they change with every signature, the video does not.
_SIGNING_PARAMS = ("x-amz-", "x-goog-", "expires", "signature", "key-pair-id", "policy")


def source_key(body: dict[str, Any]) -> str:
    """What 'the same source' means for reuse: the URL without signing parameters, or the ids."""
    if "video_url" in body:
        parts = urlsplit(str(body["video_url"]))
        kept = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(_SIGNING_PARAMS)
        ]
        return urlunsplit(parts._replace(query=urlencode(kept), fragment=""))
    return f"video_id={body.get('video_id')}&task_id={body.get('task_id')}"


def source_for(text: str) -> tuple[str, str]:
    """(source, source_key) for a source as `init` printed it: a URL (its credentials and
    signing parameters do not count), video_id=...&task_id=..., or a staged file's sha256:..."""
    if text.lower().startswith(("http://", "https://")):
        url = redact_url(text)
        return url, source_key({"video_url": url})
    return text, text


def init_session(
    *,
    video_url: str | None = None,
    video_id: str | None = None,
    task_id: str | None = None,
    policy: Policy | None = None,
    options: CheckOptions | None = None,
    api_base: str | None = None,
    api_key: ApiKey | None = None,
    api_key_file: str | None = None,
    ledger: Ledger | str | Path | None = None,
    force: bool = False,
    dry_run: bool = False,
    client: InitClient | None = None,
    debug: IO[str] | None = None,
    same_source: str | None = None,
    source: str | None = None,
    notices: IO[str] | None = None,
    task_action: str | None = None,
    probe_video_id: bool = True,
    task_client: TaskClient | None = None,
) -> InitResult:
    """Open (or reuse) an editing session for one video. Raises VideoRejected, VideoUnreadable,
    UsageError, ApiError, UnsettledAttempt (an earlier attempt may have billed: nothing sent) or
    SessionUnrecorded; sends nothing unless the pre-flight passed.

    At most one billed request per source and account (API base, key) unless `force`: a session
    of the same account is reused, and an earlier attempt that may have billed stops this one.
    `same_source` replaces what the ledger takes for the same source (source_key): for a staged
    file, its content hash, since each presigned URL of the same object differs. `source` is
    what the ledger stores and reports print for it (default: the URL without credentials): for a
    staged file s3://BUCKET/KEY, so no live signature is kept or shown. `notices`, if given, gets
    a line when waiting for another process's claim and when a claim was contended.

    A `video_id` + `task_id` is looked up first (task_query.py: `task_action` names the route,
    else the ledger's memory or each route in turn) and judged (task_judge.py, its URL probed
    unless not `probe_video_id`): VideoRejected before anything billed is sent, ApiError if the
    query was refused.
    """
    body: dict[str, Any] = {}
    if video_url is not None:
        # What is traced, stored and printed never holds user:password@; the check's
        # url.credentials rule refuses such a URL before anything is sent.
        body["video_url"] = redact_url(video_url)
    if video_id is not None:
        body["video_id"] = video_id
    if task_id is not None:
        body["task_id"] = task_id
    problems = validate_request(body)
    if problems:
        raise UsageError(
            "the request body is not valid, nothing was sent: "
            + "; ".join(f"{p.path}: {p.message}" for p in problems)
        )
    source = source or body.get("video_url") or source_key(body)
    result = InitResult(source=source, body=body, verdict="unchecked", dry_run=dry_run)
    if video_url is not None:
        # The Result we print and keep names the URL without its credentials.
        checked = check_one(video_url, policy or load_policy(), options=options)
        checked.source = source
        if checked.remote is not None:
            checked.remote = replace(
                checked.remote,
                url=redact_url(checked.remote.url),
                final_url=redact_url(checked.remote.final_url),
            )
        result.check, result.verdict = checked, checked.verdict
        if checked.verdict == "reject":
            first = checked.violations[0].message if checked.violations else "rejected"
            raise VideoRejected(
                f"the pre-flight rejected the video, nothing was sent: {first}", checked
            )
        if checked.verdict == "error":
            error = checked.error
            raise VideoUnreadable(
                "the video could not be probed, nothing was sent: "
                + (error.message if error else "unreadable"),
                checked,
                kind=error.kind if error else None,
            )
    base = resolve_api_base(api_base)
    own_ledger = not isinstance(ledger, Ledger)
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger or default_path())
    result.ledger = str(book.path)
    try:
        if video_id is not None and task_id is not None:
            check_task(
                result,
                book,
                video_id,
                task_id,
                task_client or task_client_for(client, base, api_key, api_key_file, debug, dry_run),
                KlingOptions(task_action, probe_video_id, policy, options),
            )
        key = same_source or source_key(body)
        if dry_run:
            # Without a key the account is unknown: any account's session is shown.
            fingerprint = _fingerprint(client, api_key, api_key_file)
            base = client.api_base if client is not None else base
            active = book.active_session(
                key, api_base=base if fingerprint else None, key_fingerprint=fingerprint
            )
            if active is not None and not force:
                _fill_from_session(result, active, reused=True)
            return result
        api = client or InitClient(base, api_key or load_api_key(api_key_file), debug=debug)
        # The account is where the request goes and the key it goes with.
        base, fingerprint = api.api_base, api.key.fingerprint()

        def waiting(line: str) -> None:
            _notice(notices, line)

        with book.exclusive(
            key, api_base=base, key_fingerprint=fingerprint, on_wait=waiting
        ) as claim:
            active = book.active_session(key, api_base=base, key_fingerprint=fingerprint)
            if active is not None and not force:
                _fill_from_session(result, active, reused=True)
                return result
            if not force:
                unsettled = book.unsettled_attempts(key, api_base=base, key_fingerprint=fingerprint)
                if unsettled:
                    raise _unsettled(result.source, key, unsettled[-1])
            _send(api, book, result, key, claim)
            if result.contended:
                _notice(
                    notices,
                    f"warning: the claim on {result.source} was taken over while this request "
                    f"was out; session {result.session_id} is recorded as contended (another "
                    "process may hold one too): see preflight sessions --attempts",
                )
    finally:
        if own_ledger:
            book.close()
    return result


def _fingerprint(
    client: InitClient | None, api_key: ApiKey | None, api_key_file: str | None
) -> str | None:
    if client is not None:
        return client.key.fingerprint()
    try:
        return (api_key or load_api_key(api_key_file)).fingerprint()
    except UsageError:
        return None


def _notice(stream: IO[str] | None, line: str) -> None:
    if stream is not None:
        print(f"preflight: {line}", file=stream, flush=True)


def _unsettled(source: str, key: str, row: AttemptRow) -> UnsettledAttempt:
    who = f"pid {row.pid} on {row.host}" if row.host else "a preflight before version 4"
    request = f", request id {row.request_id}" if row.request_id else ""
    return UnsettledAttempt(
        f"an earlier attempt on {source} may have opened and billed a session: attempt "
        f"{row.id} ({row.state}) by {who}, started {row.started_at}{request}; nothing was sent",
        source=key,
        attempt={
            "id": row.id,
            "state": row.state,
            "host": row.host,
            "pid": row.pid,
            "started_at": row.started_at,
            "request_id": row.request_id,
        },
    )


def _send(api: InitClient, book: Ledger, result: InitResult, key: str, claim: Claim) -> None:
    facts = result.check.facts if result.check else None
    recorder = _LedgerRecorder(book, result, key, facts, api.api_base, api.key.fingerprint(), claim)
    try:
        response = api.init_selection(result.body, recorder)
    except ApiError as exc:
        result.attempts, result.ambiguous = exc.attempts, exc.ambiguous
        raise
    except ClaimLost:
        raise  # checked before sending: this attempt never left, and earlier ones are recorded
    except LedgerError as exc:
        if not recorder.sent:
            raise  # nothing was sent: a plain usage error, nothing billed
        opened = recorder.opened
        if opened is not None:
            message = (
                f"the API opened (and billed) session {opened.session_id} but the ledger could "
                f"not record it: {exc}"
            )
        else:
            message = f"the ledger failed after a request was sent, which may have billed: {exc}"
        raise SessionUnrecorded(
            message,
            session_id=opened.session_id if opened else None,
            request_id=opened.request_id if opened else None,
            attempts=recorder.sent,
            ambiguous=recorder.ambiguous,
            source=key,
            disk_full="full" in str(exc),
        ) from None
    assert recorder.row is not None  # finish() recorded it, or raised above
    result.cross_check = recorder.cross_check
    _fill_from_session(result, recorder.row, reused=False)
    result.attempts, result.ambiguous = response.attempts, response.ambiguous


@dataclass
class _LedgerRecorder:
    book: Ledger
    result: InitResult
    key: str
    facts: Facts | None  # what our probe read; None for video_id + task_id
    api_base: str
    key_fingerprint: str
    claim: Claim  # checked right before each send, and when recording its answer
    last_id: int | None = None
    sent: int = 0  # attempts whose row was written, so the request went (or may have gone) out
    ambiguous: bool = False
    opened: Outcome | None = None  # the answer that opened a session, once it arrived
    row: SessionRow | None = None  # that session, once recorded
    cross_check: list[CrossCheck] = field(default_factory=list)

    def begin(self, attempt_no: int) -> int:
        self.last_id = self.book.begin_attempt(
            source=self.result.source,
            source_key=self.key,
            attempt_no=attempt_no,
            request_body=self.result.body,
            facts=None if self.facts is None else self.facts.to_dict(),
            verdict=self.result.verdict,
            api_base=self.api_base,
            key_fingerprint=self.key_fingerprint,
            claim=self.claim,
        )
        self.sent += 1
        return self.last_id

    def finish(self, attempt_id: int, outcome: Outcome) -> None:
        """Record the answer. It may have been billed: a ledger that fails is tried again (on
        a new connection) until book.retry_s from now, the session kept here meanwhile."""
        deadline = time.monotonic() + self.book.retry_s
        self.ambiguous = self.ambiguous or outcome.state == "ambiguous"
        if outcome.session_id is not None:
            # Kept before the write, so that a failing ledger cannot make us forget it.
            self.opened = outcome
            data = outcome.data or {}
            server = ServerFacts.from_data(data)
            if self.facts is not None:
                self.cross_check = cross_check(self.facts, server)
            self.row = self.book.record_opened(
                attempt_id,
                session_id=outcome.session_id,
                data=data,
                http_status=outcome.http_status,
                message=outcome.message,
                request_id=outcome.request_id,
                ambiguous=self.ambiguous,
                cross_check=[item.to_dict() for item in self.cross_check],
                duration_bucket=duration_bucket(self.facts, server),
                key_fingerprint=outcome.key_fingerprint or self.key_fingerprint,
                claim=self.claim,
                server_date=outcome.server_date,
                deadline=deadline,
            )
            return
        code = outcome.code if isinstance(outcome.code, int) else None
        message = (
            outcome.message
            if not isinstance(outcome.code, str)
            else (f"{outcome.code}: {outcome.message}")
        )
        self.book.finish_attempt(
            attempt_id,
            state=outcome.state,
            http_status=outcome.http_status,
            code=code,
            message=message,
            request_id=outcome.request_id,
            session_id=outcome.session_id,
            ambiguous=outcome.state == "ambiguous",
            deadline=deadline,
        )


def _fill_from_session(result: InitResult, row: SessionRow, *, reused: bool) -> None:
    result.session_id, result.reused = row.session_id, reused
    result.expires_at, result.request_id = row.expires_at, row.request_id
    result.server = ServerFacts.from_row(row)
    result.duration_bucket, result.key_fingerprint = row.duration_bucket, row.key_fingerprint
    result.contended = row.contended
