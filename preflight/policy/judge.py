"""judge(): every rule family applied to one source, the policy's disabled warnings dropped once.

The one place a verdict is decided, for files and URLs alike. Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..facts import Facts
from ..verdict import Verdict, Violation
from .load import Policy
from .rules import judge_media

if TYPE_CHECKING:
    from .url import UrlFacts


def judge(facts: Facts | None, policy: Policy, url: UrlFacts | None = None) -> Verdict:
    """Judge the media `facts` and, for a URL, the `url` facts against `policy`.

    `facts` is None when no media was read: the URL could not or must not be fetched, or the
    server answered without the file; the url rules then say why. Report order: the url rules,
    the media rules, then url.no_range (it qualifies the media facts it comes after).
    """
    if facts is None and url is None:
        raise UsageError("judge() needs the media facts, the URL facts, or both")
    violations: list[Violation] = []
    warnings: list[Violation] = []
    if url is not None:
        from .url import judge_no_range, judge_url  # socket, ipaddress: for URLs only

        judged = judge_url(url)
        violations += judged.violations
        warnings += judged.warnings
    if facts is not None:
        media_violations, media_warnings = judge_media(facts, policy)
        violations += media_violations
        warnings += media_warnings
    if url is not None and url.remote is not None:
        no_range = judge_no_range(url.remote)
        if no_range is not None:
            warnings.append(no_range)
    # A house policy may silence any warning, url.* included; a violation is never silenced.
    warnings = [w for w in warnings if w.rule not in policy.disabled_warnings]
    return Verdict("reject" if violations else "pass", violations, warnings)
