"""How `init` and `sessions` show their results: a few lines for a person, or one JSON object.

The JSON shapes are the contract for scripts; README.md documents them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO, Any

from ..errors import (
    ApiError,
    NetworkError,
    PreflightError,
    ProbeError,
    SessionUnrecorded,
    UnsettledAttempt,
)
from ..ledger import AttemptRow, SessionRow
from ..session.result import InitResult
from ..verdict import Result
from .printable import printable


def print_init(result: InitResult, stream: IO[str], *, as_json: bool) -> None:
    if as_json:
        stream.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    if result.dry_run:
        state = (
            f"would reuse session {result.session_id}"
            if result.reused
            else "would send " + json.dumps(result.body)
        )
        stream.write(f"DRY RUN {result.source}: verdict {result.verdict}; {state}\n")
        return
    how = "reused" if result.reused else "opened"
    stream.write(f"SESSION {result.session_id} ({how}; expires {result.expires_at})\n")
    stream.write(f"        source: {result.source}\n")
    server = result.server
    if server is not None and server.width:
        duration = server.original_duration
        seconds = f"{duration / 1000:.3f} s" if duration is not None else "? s"
        stream.write(
            f"        server read: {server.width}x{server.height}, "
            f"{server.fps} fps, {seconds}, {server.total_frame} frames; "
            f"cost {server.final_unit_deduction}\n"
        )
    if result.request_id:
        stream.write(f"        request_id: {result.request_id}\n")
    if result.duration_bucket or result.key_fingerprint:
        # What the follow-up calls need: the create-task duration, and the same account's key.
        stream.write(
            f"        next calls: duration {result.duration_bucket or '?'}, "
            f"key {result.key_fingerprint or '?'}\n"
        )
    _print_task(result.check, stream)
    for item in result.cross_check:
        stream.write(
            f"        ! cross-check: {item.field}: ours {item.ours}, server {item.server}\n"
        )
    if result.ambiguous:
        stream.write(
            "        ! an attempt's answer was lost after sending: it may have opened "
            "and billed a session too (see the ledger)\n"
        )


def _print_task(check: Result | None, stream: IO[str]) -> None:
    """What the Kling task query found for a video_id (task_judge.py), and its warnings."""
    task = check.kling if check is not None else None
    if check is None or not task:
        return
    margin = task.get("margin_s")
    left = f"; {float(margin) / 86400:.2f} days left of 30" if margin is not None else ""
    stream.write(
        printable(
            f"        task: {task.get('task_id')} ({task.get('action')}), video "
            f"{task.get('video_id')}, {task.get('duration_s', '?')} s{left}\n"
        )
    )
    for warning in check.warnings:
        if warning.rule.startswith("video_id."):
            stream.write(printable(f"        ! {warning.rule}: {warning.message}\n"))


def local_kind(error: PreflightError) -> str:
    """The documented `kind` of an init that failed on this side, before anything was sent."""
    from ..errors import LedgerError, StagingError, UsageError, VideoRejected

    if isinstance(error, (ProbeError, NetworkError)):
        return error.kind  # one of the check's error kinds (README "JSON output")
    if isinstance(error, VideoRejected):
        return "rejected"
    if isinstance(error, LedgerError):
        return "ledger"
    if isinstance(error, StagingError):
        return "storage"
    if isinstance(error, UsageError):
        return "usage"
    return "internal"


def print_init_error(
    error: PreflightError, check: Result | None, stream: IO[str], *, as_json: bool, verdict: str
) -> None:
    """For --json: one object even on failure, so scripts always parse the same shape."""
    if not as_json:
        return
    detail: dict[str, Any]
    if isinstance(error, (ApiError, SessionUnrecorded, UnsettledAttempt)):
        # What the server said, the session the ledger lost, or the earlier attempt that may
        # have billed (`earlier_attempt`).
        detail = error.to_dict()
    else:
        detail = {"kind": local_kind(error), "message": str(error)}
    document = {
        "verdict": verdict,
        # Set only by kind `unrecorded`: a session the API opened that the ledger failed to keep.
        "session_id": detail.get("session_id"),
        "reused": False,
        "expires_at": None,
        "request_id": detail.get("request_id"),
        "server": {},
        "error": detail,
        "check": check.to_dict() if check is not None else None,
    }
    stream.write(json.dumps(document, indent=2) + "\n")


def print_sessions(
    rows: list[SessionRow], stream: IO[str], *, as_json: bool, now: datetime
) -> None:
    if as_json:
        stream.write(json.dumps({"sessions": [r.to_dict() for r in rows]}, indent=2) + "\n")
        return
    if not rows:
        stream.write("no sessions recorded\n")
        return
    for row in rows:
        state = "active " if row.active(now) else "expired"
        # Billed after its claim was taken over: another session may exist for the source.
        flag = "  CONTENDED" if row.contended else ""
        stream.write(f"{row.session_id}  {state}  expires {row.expires_at}  {row.source}{flag}\n")


def print_attempts(rows: list[AttemptRow], stream: IO[str], *, as_json: bool) -> None:
    """`sessions --attempts`: the attempts that may have billed (sending, ambiguous,
    contended), newest first, with who sent them and when."""
    if as_json:
        stream.write(json.dumps({"attempts": [r.to_dict() for r in rows]}, indent=2) + "\n")
        return
    if not rows:
        stream.write("no attempts that may have billed\n")
        return
    for row in rows:
        who = f"pid {row.pid} on {row.host}" if row.host else "host unknown"
        session = f"  session {row.session_id}" if row.session_id else ""
        request = f"  request_id {row.request_id}" if row.request_id else ""
        stream.write(
            f"{row.id}  {row.state:<9}  {row.started_at}  {who}{session}{request}  {row.source}\n"
        )
