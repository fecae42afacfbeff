"""The human reporter: one row per source with the facts that matter, then each problem and its fix.

Colour only on a terminal, and never when NO_COLOR is set (the CLI decides).
"""

from __future__ import annotations

from typing import IO, Any

from ..facts import Facts
from ..verdict import Result, Violation
from .printable import shown

_COLORS = {"pass": "32", "reject": "31", "error": "35", "warn": "33", "dim": "2"}


class TextReporter:
    in_input_order = True

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        self.stream = stream
        self.color = color

    def _write(self, text: str) -> None:
        # Every field is passed through shown() before it gets here (a name that is not UTF-8
        # must not raise on a strict UTF-8 terminal; a newline or ESC in a name must not make
        # a line or a colour of its own); only our colour codes reach the stream raw.
        self.stream.write(text)

    def _paint(self, text: str, key: str) -> str:
        return f"\033[{_COLORS[key]}m{text}\033[0m" if self.color else text

    def result(self, result: Result) -> None:
        label = self._paint(f"{result.verdict.upper():<7}", result.verdict)
        line = f"{label} {shown(result.source)}"
        if result.facts is not None:
            line += "  " + self._paint(shown(describe(result.facts)), "dim")
        self._write(line + "\n")
        if result.remote is not None:
            remote = result.remote
            of = f" of {remote.size_bytes}" if remote.size_bytes is not None else ""
            count = remote.transfer.requests
            line = f"read {remote.transfer.bytes}{of} bytes in {count} request{'s' * (count != 1)}"
            if remote.final_url and remote.final_url != result.source:
                line = f"-> {shown(remote.final_url)}; {line}"
            self._write(f"        {self._paint(line, 'dim')}\n")
        if result.error is not None:
            self._write(f"        {shown(result.error.message)}\n")
        for violation in result.violations:
            self._problem("✗", violation, "reject")
        for warning in result.warnings:
            self._problem("!", warning, "warn")
        for d in result.disagreements:
            said = f"{d.field}: mediainfo {_value(d.mediainfo)}, ffprobe {_value(d.ffprobe)}"
            self._write(f"        ≠ {shown(said)}\n")
        self.stream.flush()

    def _problem(self, mark: str, problem: Violation, key: str) -> None:
        said = shown(f"{problem.rule}: {problem.message}")
        self._write(f"        {self._paint(mark, key)} {said}\n")
        if problem.hint:
            self._write(f"          fix: {shown(problem.hint)}\n")

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        skipped = summary.get("skipped")
        if len(results) > 1 or skipped:
            self._write(
                f"{summary['total']} checked: {summary['pass']} pass, {summary['reject']} reject, "
                f"{summary['error']} error (policy {shown(summary['policy'])})\n"
            )
        if skipped:
            self._write(shown(skipped_line(skipped)) + "\n")


def skipped_line(skipped: dict[str, Any]) -> str:
    """'skipped 3 files that are not video: 2 .txt, 1 .json' (folder walks only)."""
    kinds = ", ".join(f"{count} {kind}" for kind, count in skipped["kinds"].items())
    files = "file that is" if skipped["total"] == 1 else "files that are"
    return f"skipped {skipped['total']} {files} not video: {kinds}"


def _value(value: object) -> str:
    # What a backend read: "unknown" where it read nothing, a rate or a time to 3 decimals.
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def describe(facts: Facts) -> str:
    parts = [f"{facts.container}"]
    if facts.video_codec:
        parts[0] += f"/{facts.video_codec}"
    if facts.width and facts.height:
        parts.append(f"{facts.width}x{facts.height}")
    if facts.fps is not None:
        parts.append(f"{facts.fps:.3f}".rstrip("0").rstrip(".") + " fps")
    if facts.duration is not None:
        parts.append(f"{facts.duration:.3f} s")
    elif facts.width:
        parts.append("duration unknown")  # a backend gave none (an Ogg, a live stream)
    return "  ".join(parts)
