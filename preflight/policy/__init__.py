"""The policy: the limits as data (shipped profiles, house files) and the judge that applies them.

`load_policy` reads and validates a policy (load.py), `resolve_policy` finds the one that applies
without a flag (discover.py), trusting a file found on disk only if its owner is (trust.py);
`judge` turns the facts of one source into a Verdict (judge.py), every rule family: the media's
(rules.py) and the URL's (url.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .discover import PolicyChoice, choose_policy, resolve_policy
from .judge import judge
from .load import PROFILES, Policy, load_policy

if TYPE_CHECKING:
    from .url import UrlFacts

__all__ = [
    "PROFILES",
    "Policy",
    "PolicyChoice",
    "UrlFacts",
    "choose_policy",
    "judge",
    "load_policy",
    "resolve_policy",
]


def __getattr__(name: str) -> Any:
    # url.py loads on first use: it needs socket, ipaddress and datetime, which judging a local
    # file does not.
    if name == "UrlFacts":
        from .url import UrlFacts

        return UrlFacts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
