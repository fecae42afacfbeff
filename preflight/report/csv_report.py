"""The CSV report: one row per source with its verdict, rule ids and main facts, for spreadsheets.

Columns are fixed (COLUMNS); an unknown value is an empty cell, never "None".
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..policy import Policy
from ..verdict import Result
from .atomic import write_atomically

FACT_COLUMNS = (
    "container",
    "video_codec",
    "width",
    "height",
    "fps",
    "fps_exact",
    "duration",  # seconds of the video track
    "container_duration",  # seconds of the whole movie
    "frame_count",
    "size_bytes",
    "rotation",  # clockwise degrees
)
COLUMNS = (
    "source",
    "verdict",
    "rules",  # violation ids, space-separated
    "warnings",  # warning ids, space-separated
    "error_kind",
    "error_message",
    *FACT_COLUMNS,
)


def write(results: list[Result], path: str | Path, *, policy: Policy) -> None:
    """Write `results` as a CSV file at `path` (UTF-8, header row), atomically.

    `policy` is not a column (every row was judged by it); it is accepted for the common signature.
    """
    del policy
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for result in results:
        writer.writerow(_row(result))
    # backslashreplace: a file name with undecodable bytes still gets a row, and valid UTF-8.
    write_atomically(Path(path), buffer.getvalue().encode("utf-8", "backslashreplace"))


def _row(result: Result) -> dict[str, str]:
    row = {
        "source": result.source,
        "verdict": result.verdict,
        "rules": " ".join(v.rule for v in result.violations),
        "warnings": " ".join(w.rule for w in result.warnings),
        "error_kind": result.error.kind if result.error else "",
        "error_message": result.error.message if result.error else "",
    }
    facts = result.facts.to_dict() if result.facts else {}
    for column in FACT_COLUMNS:
        value = facts.get(column)
        row[column] = "" if value is None else str(value)
    return row
