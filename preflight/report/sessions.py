"""How `init` and `sessions` show their results: a few lines for a person, or one JSON object.

The JSON shapes are the contract for scripts; README.md documents them.
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..ledger import SessionRow
from ..session import InitResult


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
    if server.get("width"):
        duration = server.get("original_duration")
        seconds = f"{float(duration) / 1000:.3f} s" if duration is not None else "? s"
        stream.write(
            f"        server read: {server['width']}x{server['height']}, "
            f"{server.get('fps')} fps, {seconds}, {server.get('total_frame')} frames; "
            f"cost {server.get('final_unit_deduction')}\n"
        )
    if result.request_id:
        stream.write(f"        request_id: {result.request_id}\n")
    for item in result.cross_check:
        stream.write(
            f"        ! cross-check: {item['field']}: ours {item['ours']}, "
            f"server {item['server']}\n"
        )
    if result.ambiguous:
        stream.write(
            "        ! an attempt's answer was lost after sending: it may have opened "
            "and billed a session too (see the ledger)\n"
        )


def print_init_error(
    error: Exception, check: Any, stream: IO[str], *, as_json: bool, verdict: str
) -> None:
    """For --json: one object even on failure, so scripts always parse the same shape."""
    if not as_json:
        return
    to_dict = getattr(error, "to_dict", None)
    detail = (
        to_dict()
        if callable(to_dict)
        else {"kind": getattr(error, "kind", "error"), "message": str(error)}
    )
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


def print_sessions(rows: list[SessionRow], stream: IO[str], *, as_json: bool, now: str) -> None:
    if as_json:
        stream.write(json.dumps({"sessions": [r.to_dict() for r in rows]}, indent=2) + "\n")
        return
    if not rows:
        stream.write("no sessions recorded\n")
        return
    for row in rows:
        state = "active " if row.expires_at > now else "expired"
        stream.write(f"{row.session_id}  {state}  expires {row.expires_at}  {row.source}\n")
