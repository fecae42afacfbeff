"""Reporters: how results are shown, each format one module behind one of two interfaces.

A Reporter writes to a stream as sources finish (text, json, jsonl, github: REPORTERS); a Writer
writes one file at the end (junit, csv, html: WRITERS). Adding a format is one new module and one
row here.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Protocol

from ..verdict import Result
from .github import GithubReporter
from .json_report import JsonLinesReporter, JsonReporter
from .text import TextReporter

if TYPE_CHECKING:
    from pathlib import Path

    from ..cache import ThumbnailCache
    from ..policy import Policy


class Reporter(Protocol):
    # True: result() is called in input order (text, json); False: as each source finishes, so
    # that a script reading JSON lines sees every result as soon as it exists.
    in_input_order: bool

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        """`color` is a wish: a format without colour ignores it."""

    def result(self, result: Result) -> None:
        """Called once per source."""

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        """Called once at the end with every result, in input order, and the summary."""


class Writer(Protocol):
    def __call__(
        self,
        results: list[Result],
        path: str | Path,
        *,
        policy: Policy,
        thumbnails: ThumbnailCache | None = None,
    ) -> None:
        """Write every result to the file at `path`, atomically; OSError if it cannot.

        `thumbnails`: where a format with pictures keeps them between runs (the probe cache).
        """


class Silent:
    """Shows nothing: for a run whose stdout is a report file (`--csv -`), not mixed with text."""

    in_input_order = False

    def result(self, result: Result) -> None:
        pass

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        pass


REPORTERS: dict[str, type[Reporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
    "jsonl": JsonLinesReporter,
    "github": GithubReporter,
}


# The file formats load on use: together they cost about 50 ms of imports (xml, csv, ffmpeg),
# which a `check` that writes none of them should not pay.
def _junit(
    results: list[Result],
    path: str | Path,
    *,
    policy: Policy,
    thumbnails: ThumbnailCache | None = None,
) -> None:
    from .junit import write

    write(results, path, policy=policy)


def _csv(
    results: list[Result],
    path: str | Path,
    *,
    policy: Policy,
    thumbnails: ThumbnailCache | None = None,
) -> None:
    from .csv_report import write

    write(results, path, policy=policy)


def _html(
    results: list[Result],
    path: str | Path,
    *,
    policy: Policy,
    thumbnails: ThumbnailCache | None = None,
) -> None:
    from .html import write

    write(results, path, policy=policy, thumbnails=thumbnails)


# In the order the CLI writes them when several are asked for.
WRITERS: dict[str, Writer] = {"junit": _junit, "csv": _csv, "html": _html}


def summarize(results: list[Result], *, policy: str, exit_code: int) -> dict[str, Any]:
    counts = {v: sum(1 for r in results if r.verdict == v) for v in ("pass", "reject", "error")}
    return {"total": len(results), **counts, "policy": policy, "exit_code": exit_code}


def _is_stdout(path: object) -> bool:
    """`-`, or a path that is our standard output (/dev/stdout, /proc/self/fd/1, a link to it)."""
    if path == "-":
        return True
    if not isinstance(path, str) or not path:
        return False
    import os

    try:
        target, out = os.stat(path), os.fstat(1)
    except (OSError, ValueError):
        return False
    return (target.st_dev, target.st_ino) == (out.st_dev, out.st_ino)


def report_to_stdout(paths: dict[str, Any], *, asked: bool) -> bool:
    """Whether a report file (--junit/--csv/--html FILE in `paths`) goes to stdout.

    UsageError if something else was `asked` to go there too, or two reports: stdout then holds
    one report alone, never text mixed into CSV.
    """
    from ..errors import UsageError

    names = [f"--{n} {paths[n]}" for n in WRITERS if _is_stdout(paths.get(n))]
    if names and (asked or len(names) > 1):
        said = " and ".join(names)
        raise UsageError(f"{said}: stdout holds one report alone; give it no other output")
    return bool(names)
