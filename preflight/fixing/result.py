"""FixResult: what fixing one source did (or would do), and its JSON (fix.schema.json).

`status` is fixed, nothing_to_fix, planned (dry run), unfixable, error (the source is unreadable)
or skipped (a batch's source whose output exists, without --force).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .deps import ExitCode, Result
from .plan import Step

STATUSES = ("fixed", "nothing_to_fix", "planned", "unfixable", "error", "skipped")


@dataclass
class FixResult:
    source: str
    status: str
    before: Result
    output: str | None = None  # the file written (fixed), that would be (planned), or is (skipped)
    after: Result | None = None  # the re-check of the output (fixed, or the last try)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""  # one line: why unfixable, or the read error
    ssim: float | None = None  # of the output against the source, when the video was re-encoded
    elapsed_ms: float = 0.0

    @property
    def lossless(self) -> bool:
        """Every step left the packets it touched byte-identical (vacuously so with no steps)."""
        return all(step.lossless for step in self.steps)

    @property
    def duration_before(self) -> float | None:
        return self.before.facts.duration if self.before.facts else None

    @property
    def duration_after(self) -> float | None:
        if self.after is None or self.after.facts is None:
            return None
        return self.after.facts.duration

    @property
    def exit_code(self) -> ExitCode:
        if self.status == "error":
            return ExitCode.PROBE_ERROR
        if self.status == "unfixable":
            return ExitCode.REJECTED
        if self.status == "skipped":
            return ExitCode.USAGE  # what was asked was not done: the output was there already
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        after = None
        if self.after is not None:
            after = {
                "verdict": self.after.verdict,
                "violations": [v.to_dict() for v in self.after.violations],
                "warnings": [w.to_dict() for w in self.after.warnings],
            }
        return {
            "source": self.source,
            "status": self.status,
            "output": self.output,
            "before": {
                "verdict": self.before.verdict,
                "violations": [v.to_dict() for v in self.before.violations],
            },
            "after": after,
            "steps": [s.to_dict() for s in self.steps],
            "lossless": self.lossless,
            "ssim": round(self.ssim, 5) if self.ssim is not None else None,
            "duration_before": _round(self.duration_before),
            "duration_after": _round(self.duration_after),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "notes": list(self.notes),
            "reason": self.reason,
        }


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None
