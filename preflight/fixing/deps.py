"""The only names the fixing package takes from the rest of preflight, imported in this one place.

A deliberate façade, and the one re-exporting module kept on purpose: every import goes through a
stable interface (pipeline, policy, errors, facts, verdict, status, and the bounded worker pool
that reads stream details), so the internals behind them can move without touching
preflight.fixing, and this list says what fixing depends on.
"""

from __future__ import annotations

from ..errors import ProbeError, UsageError
from ..facts import Facts
from ..pipeline import CheckOptions, check_one
from ..policy import Policy, load_policy
from ..probing.limits import ProbeLimits
from ..probing.worker import streams as read_stream_json
from ..status import ExitCode
from ..verdict import Failure, Result

__all__ = [
    "CheckOptions",
    "ExitCode",
    "Facts",
    "Failure",
    "Policy",
    "ProbeError",
    "ProbeLimits",
    "Result",
    "UsageError",
    "check_one",
    "load_policy",
    "read_stream_json",
]
