"""What a remote probe asks before it connects anywhere: the Gate it is handed.

The fetcher follows redirects itself, and judging a URL is the policy's job, not the probe's: the
pipeline builds the gate from the policy (policy.url.UrlGate) and hands it down, so nothing under
probing/ imports policy/. The gate resolves each host once and pins what it judged, so a
connection goes only to addresses it saw (transport.py), and it judges every redirect hop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..verdict import Violation


class HopJudgement(Protocol):
    """A redirect hop's verdict: any violation means it is not followed; warnings are kept."""

    @property
    def violations(self) -> list[Violation]: ...

    @property
    def warnings(self) -> list[Violation]: ...


class Gate(Protocol):
    @property
    def allow_private(self) -> bool:
        """Whether a private address may be connected to (a lab URL checked on purpose)."""
        ...

    def private_address(self, host: str) -> str:
        """The first address of `host` the API could not reach, or '' (resolves and pins)."""
        ...

    def pinned(self, host: str) -> tuple[str, ...] | None:
        """The judged addresses of `host`, or None when it was never judged (do not connect)."""
        ...

    def judge_hop(self, source: str, location: str) -> HopJudgement:
        """Judge a redirect from `source` to `location` before anything connects to it."""
        ...
