"""The policy: the limits as data (shipped profiles, house files) and the judge that applies them.

`load_policy` reads and validates a policy; `judge` turns Facts into a Verdict, every rule family.
"""

from __future__ import annotations

from .rules import PROFILES, Policy, judge, load_policy

__all__ = ["PROFILES", "Policy", "judge", "load_policy"]
