"""Verdict and Violation: what judging one source produced, and the Result of checking it.

`pass` (fit to send), `reject` (readable, breaks a rule) or `error` (could not be read as media).
RemoteInfo (what a URL's server answered) lives here, below both the probe that fills it and the
url rules that judge it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .facts import Disagreement, Facts, ReaderName

# The verdicts JSON consumers switch on; "unchecked" is init's, for a source no probe can read.
VerdictName = Literal["pass", "reject", "error", "unchecked"]


@dataclass(frozen=True)
class Violation:
    rule: str  # stable id, family.name: container, stream, duration, resolution, fps, url
    message: str  # one line for a person
    actual: Any
    allowed: Any
    hint: str = ""  # how to fix it, often an ffmpeg command line

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "actual": self.actual,
            "allowed": self.allowed,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class Verdict:
    verdict: Literal["pass", "reject"]
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)


@dataclass
class Transfer:
    """What a remote probe cost: body bytes received and requests sent."""

    requests: int = 0
    bytes: int = 0


@dataclass
class RemoteInfo:
    """What the server told us about the resource, and what reading it cost.

    The probe fills it and judges nothing here but redirect hops (it must, before connecting to
    one); the url rules read the status, the Content-Type and what the hops found.
    """

    url: str  # as given, with any credentials redacted
    final_url: str = ""  # where the redirects ended, redacted likewise
    status: int = 0  # of the last answer: a 4xx is data for the url.status rule, not an exception
    size_bytes: int | None = None
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""
    range_supported: bool = True
    prefix_only: bool = False  # no Range support and the file is larger than what we read
    cached: bool = False  # the facts came from the probe cache after the first request
    transfer: Transfer = field(default_factory=Transfer)
    # The url.* rules a redirect broke; nothing connected to that hop and nothing was probed.
    refused: list[Violation] = field(default_factory=list)
    # What judging the redirect hops found that does not stop the probe (plain http, a private
    # hop under allow_private); the judge adds these to the source's warnings.
    hop_warnings: list[Violation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "final_url": self.final_url,
            "status": self.status,
            "size_bytes": self.size_bytes,
            "content_type": self.content_type,
            "range_supported": self.range_supported,
            "prefix_only": self.prefix_only,
            "bytes": self.transfer.bytes,
            "requests": self.transfer.requests,
        }


@dataclass(frozen=True)
class Failure:
    kind: str  # missing, not_a_file, permission, empty, not_media, no_moov, truncated, ...
    message: str


@dataclass
class Result:
    """Everything `check` learned about one source."""

    source: str
    verdict: VerdictName  # pass, reject or error (never unchecked: that is init's)
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    facts: Facts | None = None
    error: Failure | None = None
    backend: ReaderName = "mediainfo"  # what read it; what was asked when nothing could
    disagreements: list[Disagreement] = field(default_factory=list)
    probe_ms: float = 0.0
    remote: RemoteInfo | None = None  # for URLs: final URL, status, bytes and requests used
    cached: bool = False  # the facts came from the probe cache
    # For a kling:TASK/VIDEO source: what the task query said (session/task_judge.py).
    kling: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "verdict": self.verdict,
            "violations": [v.to_dict() for v in self.violations],
            "warnings": [w.to_dict() for w in self.warnings],
            "facts": self.facts.to_dict() if self.facts else None,
            "error": {"kind": self.error.kind, "message": self.error.message}
            if self.error
            else None,
            "probe": {
                "backend": self.backend,
                "disagreements": [
                    {"field": d.field, "mediainfo": d.mediainfo, "ffprobe": d.ffprobe}
                    for d in self.disagreements
                ],
                "elapsed_ms": round(self.probe_ms, 2),
                "cached": self.cached,
            },
            **({"remote": self.remote.to_dict()} if self.remote else {}),
            **({"kling": dict(self.kling)} if self.kling is not None else {}),
        }
