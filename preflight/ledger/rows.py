"""The ledger's rows as typed records, and how values are stored in its columns: UTC stamps of
one width, JSON text, and numbers and strings taken leniently from the API's response.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from .backend import Row

# The one UTC stamp format of the ledger and the probe cache; SQLite's strftime reads it too.
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# An attempt is written as 'sending' before it is sent and finished as one of the others; left
# 'sending' after a crash, it means "unknown": the request may have gone out. 'contended' is an
# attempt that opened a session although its process had lost the claim on the source meanwhile
# (schema version 4): recorded, since it was billed, and flagged, since another may have been too.
FinishedState = Literal["ok", "failed", "ambiguous"]
AttemptState = Literal["sending", FinishedState, "contended"]
# The states of an attempt that may have billed without a session the ledger can reuse.
UNSETTLED_STATES: tuple[AttemptState, ...] = ("sending", "ambiguous")
FINISHED_STATES: tuple[FinishedState, ...] = get_args(FinishedState)


@dataclass(frozen=True)
class AttemptRow:
    id: int
    source: str
    source_key: str
    attempt_no: int
    state: AttemptState
    started_at: str
    finished_at: str | None
    request_body: dict[str, Any]
    facts: dict[str, Any] | None
    verdict: str | None
    http_status: int | None
    code: int | None
    message: str | None
    request_id: str | None
    session_id: str | None
    ambiguous: bool
    cross_check: list[dict[str, Any]]  # where the server's reading differs from our probe
    api_base: str
    # Schema version 4: the account ('unknown' in rows written before) and who sent it.
    key_fingerprint: str
    host: str | None
    pid: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    source: str
    source_key: str
    attempt_id: int
    created_at: str
    expires_at: str
    fps: float | None
    original_duration: float | None  # milliseconds, as the API reports it
    width: int | None
    height: int | None
    total_frame: int | None
    normalized_video: str | None
    final_unit_deduction: str | None
    request_id: str | None
    # Schema version 2; NULL in sessions recorded before it. What Kling's next calls need.
    duration_bucket: str | None  # the create-task `duration`: "5" or "10"
    key_fingerprint: str | None  # the API key that opened it, never the key (ApiKey.fingerprint)
    # Schema version 4: the account's API base, and whether the process that recorded it had
    # lost its claim on the source meanwhile (another process may have opened one as well).
    api_base: str | None = None
    contended: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def active(self, now: datetime) -> bool:
        return parse_stamp(self.expires_at) > utc(now)


def session_from(row: Row) -> SessionRow:
    values = {f.name: row[f.name] for f in fields(SessionRow)}
    values["contended"] = bool(values["contended"])
    return SessionRow(**values)


def attempt_from(row: Row) -> AttemptRow:
    values = {f.name: row[f.name] for f in fields(AttemptRow)}
    for name in ("request_body", "facts", "cross_check"):  # the JSON columns
        values[name] = None if values[name] is None else json.loads(values[name])
    values["ambiguous"] = bool(values["ambiguous"])
    return AttemptRow(**values)


def utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(timezone.utc)
    # A naive time is taken as UTC, not local: the ledger never holds local times.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def stamp(moment: datetime | None = None) -> str:
    """`moment` (now if None) in UTC as STAMP_FORMAT."""
    # Whole seconds, always the same width: stamps compare correctly as text, in SQL too.
    return utc(moment).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=timezone.utc)


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def as_integer(value: Any) -> int | None:
    number = as_number(value)
    return int(number) if number is not None and number.is_integer() else None


def as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
