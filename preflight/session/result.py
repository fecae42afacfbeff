"""What `init` returns: InitResult, the server's reading of the video (ServerFacts), and where that
reading differs from our probe (CrossCheck, made by cross_check). Typed values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..facts import Facts
    from ..ledger.rows import SessionRow
    from ..verdict import Result


@dataclass(frozen=True)
class ServerFacts:
    """What the API read from the video: the `data` of its answer, in the API's own units."""

    fps: float | None = None
    original_duration: float | None = None  # milliseconds (API.md), where Facts has seconds
    width: int | None = None
    height: int | None = None
    total_frame: int | None = None
    normalized_video: str | None = None  # URL of the API's normalised copy
    final_unit_deduction: str | float | None = None  # the cost: a number or a decimal string

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ServerFacts:
        """From a success answer's `data`, values as sent: the response schema has already
        checked their types, and a cross-check must show the server's 30 as 30, not 30.0."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    @classmethod
    def from_row(cls, row: SessionRow) -> ServerFacts:
        """From the ledger's record of a session (opened now, or reused)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The `duration` a create-task call takes for this source, by its length in seconds: Kling edits
# a 2-5.5 s video as a "5" task and a 7-10.5 s one as a "10" task (the policy's duration_s
# ranges, both ends inclusive); a length between or beyond has no bucket.
DURATION_BUCKETS: tuple[tuple[float, float, str], ...] = ((2.0, 5.5, "5"), (7.0, 10.5, "10"))


def duration_bucket(facts: Facts | None, server: ServerFacts | None) -> str | None:
    """The create-task duration ("5" or "10") for a source: from our probe's duration, which
    the policy judged, else from the server's original_duration (milliseconds)."""
    seconds = facts.duration if facts is not None else None
    if seconds is None and server is not None and server.original_duration is not None:
        seconds = server.original_duration / 1000
    if seconds is None:
        return None
    for low, high, bucket in DURATION_BUCKETS:
        if low <= seconds <= high:
            return bucket
    return None


@dataclass(frozen=True)
class CrossCheck:
    """One fact the server read differently from our probe: how we learn what the API measures."""

    field: str  # fps, duration (seconds on both sides), width, height, frame_count
    ours: float | None  # None: the server read a size our probe could not
    server: float

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "ours": self.ours, "server": self.server}


def cross_check(facts: Facts, server: ServerFacts) -> list[CrossCheck]:
    """Where the server's reading of the video differs from our probe, beyond rounding."""
    out: list[CrossCheck] = []

    def differs(name: str, ours: float | None, theirs: float | None, tolerance: float) -> None:
        if ours is not None and theirs is not None and abs(ours - theirs) > tolerance:
            out.append(CrossCheck(name, ours, theirs))

    differs("fps", facts.fps, server.fps, 0.01)
    # original_duration is in milliseconds; a frame's worth of difference is noise.
    frame_s = 1 / facts.fps if facts.fps else 0.05
    duration = None if server.original_duration is None else server.original_duration / 1000
    differs("duration", facts.duration, duration, frame_s + 0.001)
    sides = (
        ("width", server.width, facts.width, facts.display_width),
        ("height", server.height, facts.height, facts.display_height),
    )
    for side, theirs, coded, displayed in sides:
        # The server may report the displayed (rotated) size: either reading is the same video.
        if theirs is not None and theirs not in (coded, displayed):
            out.append(CrossCheck(side, coded, theirs))
    differs("frame_count", facts.frame_count, server.total_frame, 0)
    return out


@dataclass
class InitResult:
    """One `init`: the body sent (or that would be), the session opened or reused, and the check."""

    source: str
    body: dict[str, Any]
    verdict: str  # pass, or "unchecked" for video_id + task_id (no probe is possible)
    session_id: str | None = None
    reused: bool = False
    expires_at: str | None = None
    request_id: str | None = None
    server: ServerFacts | None = None  # set once a session is opened or reused
    cross_check: list[CrossCheck] = field(default_factory=list)
    ambiguous: bool = False
    attempts: int = 0
    dry_run: bool = False
    check: Result | None = None
    ledger: str = ""
    duration_bucket: str | None = None  # the create-task `duration`: "5" or "10"
    key_fingerprint: str | None = None  # which API key opened it (ApiKey.fingerprint)
    # The claim on the source was taken over while the request was out: the session is recorded
    # (it was billed) and marked contended, since another process may have opened one too.
    contended: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "verdict": self.verdict,
            "session_id": self.session_id,
            "reused": self.reused,
            "expires_at": self.expires_at,
            "request_id": self.request_id,
            "server": self.server.to_dict() if self.server is not None else {},
            "cross_check": [item.to_dict() for item in self.cross_check],
            "ambiguous": self.ambiguous,
            "attempts": self.attempts,
            "dry_run": self.dry_run,
            "body": self.body,
            "ledger": self.ledger,
            "check": self.check.to_dict() if self.check else None,
            "duration_bucket": self.duration_bucket,
            "key_fingerprint": self.key_fingerprint,
            "contended": self.contended,
        }
