"""FixResult: what fixing one source did (or would do), and its JSON (fix.schema.json).

`status` is fixed, nothing_to_fix, planned (dry run), unfixable, error (the source is unreadable)
or skipped (a batch's source whose output exists, without --force).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .deps import ExitCode, Result
from .keep import Dropped
from .plan import Plan, Step, reencoded

STATUSES = ("fixed", "nothing_to_fix", "planned", "unfixable", "error", "skipped")


@dataclass(frozen=True)
class Written:
    """The output file as written: what an editor asks before uploading it."""

    size_bytes: int
    video_codec: str
    profile: str
    bit_depth: int
    width: int | None
    height: int | None
    audio_codec: str  # "" when the output has no audio

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "video_codec": self.video_codec,
            "profile": self.profile,
            "bit_depth": self.bit_depth,
            "width": self.width,
            "height": self.height,
            "audio_codec": self.audio_codec or None,
        }


def surviving_steps(rounds: list[tuple[Plan, str]]) -> tuple[list[Step], list[str]]:
    """The steps of every round as they are in the file, and a note for each that is not.

    A lossless step of an early round whose packets a later round re-encoded is no longer
    lossless; a step a later round did again (a stream-copy cut that overshot, then an exact cut)
    did not survive at all: it is left out of the steps, and a note says what became of it.
    """
    steps: list[Step] = []
    notes: list[str] = []
    for number, (plan, command) in enumerate(rounds):
        later = [one for one, _ in rounds[number + 1 :]]
        redone = {step.action for one in later for step in one.steps}
        reencoded_later = any(one.reencode for one in later)
        for step in plan.with_commands(command).steps:
            if step.action in redone:
                notes.append(
                    f"the {step.action} of round {number + 1} ({step.detail}) did not survive: "
                    "a later round did it again"
                )
                continue
            steps.append(reencoded(step) if reencoded_later else step)
    return steps, notes


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
    vmaf: float | None = None  # likewise (None also when this ffmpeg has no libvmaf)
    elapsed_ms: float = 0.0
    written: Written | None = None  # what the output file is (fixed)
    dropped: list[Dropped] = field(default_factory=list)  # streams the output does not carry

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
            "vmaf": round(self.vmaf, 3) if self.vmaf is not None else None,
            "written": self.written.to_dict() if self.written is not None else None,
            "dropped": [d.to_dict() for d in self.dropped],
            "duration_before": _round(self.duration_before),
            "duration_after": _round(self.duration_after),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "notes": list(self.notes),
            "reason": self.reason,
        }


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None
