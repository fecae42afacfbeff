"""Verdict and Violation: what judging one source produced, and the Result of checking it.

`pass` (fit to send), `reject` (readable, breaks a rule) or `error` (could not be read as media).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .facts import Disagreement, Facts

if TYPE_CHECKING:
    from .probing.remote import RemoteInfo


@dataclass(frozen=True)
class Violation:
    rule: str  # stable id, family.name: container, stream, duration, resolution, fps, url
    message: str  # one line for a person
    actual: Any
    allowed: Any
    hint: str = ""  # how to fix it, often an ffmpeg command line

    @property
    def family(self) -> str:
        return self.rule.split(".", 1)[0]

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
    verdict: str  # pass or reject
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    kind: str  # missing, not_a_file, permission, empty, not_media, no_moov, truncated, ...
    message: str


@dataclass
class Result:
    """Everything `check` learned about one source."""

    source: str
    verdict: str  # pass, reject or error
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    facts: Facts | None = None
    error: Failure | None = None
    backend: str = "mediainfo"
    disagreements: list[Disagreement] = field(default_factory=list)
    probe_ms: float = 0.0
    remote: RemoteInfo | None = None  # for URLs: final URL, status, bytes and requests used
    cached: bool = False  # the facts came from the probe cache

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
        }
