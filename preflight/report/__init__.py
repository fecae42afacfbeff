"""Reporters: how results are shown. Each format is one module behind the Reporter interface.

`make_reporter(name, stream)` picks one; adding a format touches one new module and this table.
"""

from __future__ import annotations

from typing import IO, Any, Protocol

from ..verdict import Result


class Reporter(Protocol):
    def result(self, result: Result) -> None:
        """Called as each source finishes, in input order."""

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        """Called once at the end with every result and the summary."""


def summarize(results: list[Result], *, policy: str, exit_code: int) -> dict[str, Any]:
    counts = {v: sum(1 for r in results if r.verdict == v) for v in ("pass", "reject", "error")}
    return {"total": len(results), **counts, "policy": policy, "exit_code": exit_code}


def make_reporter(name: str, stream: IO[str], *, color: bool = False) -> Reporter:
    from . import json_report, text

    if name == "json":
        return json_report.JsonReporter(stream)
    if name == "jsonl":
        return json_report.JsonLinesReporter(stream)
    return text.TextReporter(stream, color=color)
