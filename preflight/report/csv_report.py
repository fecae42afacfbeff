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
from .printable import printable

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
# What makes a spreadsheet read a cell as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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
    write_atomically(Path(path), buffer.getvalue().encode("utf-8"))


def _row(result: Result) -> dict[str, str]:
    row = {
        "source": _text(result.source),
        "verdict": _text(result.verdict),
        "rules": _text(" ".join(v.rule for v in result.violations)),
        "warnings": _text(" ".join(w.rule for w in result.warnings)),
        "error_kind": _text(result.error.kind) if result.error else "",
        "error_message": _text(result.error.message) if result.error else "",
    }
    facts = result.facts.to_dict() if result.facts else {}
    for column in FACT_COLUMNS:
        value = facts.get(column)
        if value is None:
            row[column] = ""
        elif isinstance(value, str):
            row[column] = _text(value)
        else:
            # A number stays a number a spreadsheet can sum, even a negative one: str() of an
            # int or float can never be a formula, so only text cells get the quote.
            row[column] = str(value)
    return row


def _text(value: str) -> str:
    """A text cell: printable, and defused if a spreadsheet would read it as a formula.

    OWASP's CSV-injection advice: a cell starting with = + - @ TAB or CR is prefixed with a
    single quote, so a file named `=HYPERLINK(...).mp4` is shown as text, never evaluated.
    """
    value = printable(value)  # a name that is not UTF-8 shows as \xff, in valid UTF-8
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
