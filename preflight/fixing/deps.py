"""The only names the fixing package takes from the rest of preflight, imported in this one place.

A deliberate façade, and (with recheck.py) the one re-exporting module kept on purpose: every
import goes through a stable interface (policy, errors, facts, verdict, status, and the bounded
worker pool that reads stream details), so the internals behind them can move without touching
preflight.fixing, and this list says what fixing depends on. The pipeline's check_one is in
recheck.py: the planner imports this module, and check's fix-first hints import the planner, so
this one must not lead back to the pipeline.
"""

from __future__ import annotations

from ..errors import ProbeError, UsageError
from ..facts import Facts
from ..policy import Policy, load_policy
from ..probing.limits import ProbeLimits
from ..probing.worker import streams as read_stream_json
from ..status import ExitCode
from ..verdict import Failure, Result

__all__ = [
    "ExitCode",
    "Facts",
    "Failure",
    "Policy",
    "ProbeError",
    "ProbeLimits",
    "Result",
    "UsageError",
    "load_policy",
    "read_stream_json",
]
