"""The GitHub Actions reporter: one workflow command per problem, so a run's page and the pull
request show each reject, error and warning on the file it is about.

https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

from typing import IO, Any

from ..verdict import Result
from .printable import shown


def escape_data(text: str) -> str:
    # The message after `::`: GitHub unescapes %25, %0D and %0A only, so `%` goes first.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    # A property value (file=...) also ends at `,` and `:`, so those are escaped too.
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def plain(text: str) -> str:
    """A field of a line that is no workflow command (the summary): on one line, inert, and
    without `##[`, which the runner still reads as an old-style command anywhere in a line."""
    return shown(text).replace("##[", "##%5B")


class GithubReporter:
    in_input_order = True

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        self.stream = stream  # annotations have no colour

    def result(self, result: Result) -> None:
        problems = [(p.rule, p.message, "error") for p in result.violations]
        problems += [(p.rule, p.message, "warning") for p in result.warnings]
        if result.error is not None:  # the kind (not_media, truncated, ...) stands for the rule
            problems.insert(0, (result.error.kind, result.error.message, "error"))
        is_url = result.source.startswith(("http://", "https://"))
        # A file annotation lands on the file in the pull request (a path relative to the
        # checkout); a URL is no file of the repository, so it leads the message instead.
        # shown() first: the log shows a line raw, so ESC in a name would colour it, and a name
        # that is not UTF-8 would raise on a strict stream; then GitHub's own escaping, which
        # keeps a line break as data (%0A).
        where = "" if is_url else f" file={escape_property(shown(result.source, keep_cr_lf=True))}"
        lead = f"{result.source}: " if is_url else ""
        for rule, message, level in problems:
            data = escape_data(shown(f"{lead}{rule}: {message}", keep_cr_lf=True))
            self.stream.write(f"::{level}{where}::{data}\n")
        self.stream.flush()

    def finish(self, results: list[Result], summary: dict[str, Any]) -> None:
        # A plain line: the log shows it as is, and a script can still read the exit status.
        # The policy's name comes from a file the pull request may have changed: plain().
        self.stream.write(
            f"preflight: {summary['total']} checked: {summary['pass']} pass, "
            f"{summary['reject']} reject, {summary['error']} error "
            f"(policy {plain(summary['policy'])})\n"
        )
