"""JSON reporters: one document {"results": [...], "summary": {...}}, or one result per line.

The shapes are the public contract for scripts; README.md documents them.
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..verdict import Result


class JsonReporter:
    in_input_order = True

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        self.stream = stream  # JSON has no colour

    def result(self, result: Result) -> None:
        pass  # the whole document is written at the end, so it is valid JSON or nothing

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        document = {"results": [r.to_dict() for r in results], "summary": summary}
        self.stream.write(json.dumps(document, indent=2) + "\n")


class JsonLinesReporter:
    in_input_order = False  # a line as each source finishes: a script sees it at once

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        self.stream = stream  # JSON has no colour

    def result(self, result: Result) -> None:
        self.stream.write(json.dumps(result.to_dict()) + "\n")
        self.stream.flush()

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        pass  # a line per result only: the exit status carries the summary
