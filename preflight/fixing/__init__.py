"""preflight.fixing: turn a rejected video into one the policy accepts, losslessly where the file
allows, and prove it with a re-check (issue 12). `fix()` is the library entry; the CLI wraps it.
"""

from __future__ import annotations

from .graph import DEFAULT_PRESET
from .plan import EXTEND_MODES, Step
from .result import FixResult
from .run import default_output, fix, resolve_output
from .spawn import FixCancelled

__all__ = [
    "DEFAULT_PRESET",
    "EXTEND_MODES",
    "FixCancelled",
    "FixResult",
    "Step",
    "default_output",
    "fix",
    "resolve_output",
]
