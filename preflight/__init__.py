"""preflight: check videos against the Kling multi-elements init-selection limits before sending.

The library is the product; the `preflight` command is a thin layer over these names.
"""

from __future__ import annotations

from .check import CheckOptions, check, check_one, iter_check
from .client import ApiError, ApiKey
from .errors import (
    NetworkError,
    PolicyError,
    PreflightError,
    ProbeError,
    UsageError,
    VideoRejected,
    VideoUnreadable,
)
from .facts import Facts
from .init import InitResult, init_session
from .policy import Policy, judge, load_policy
from .probe import probe
from .request import validate_request, validate_response
from .status import ExitCode
from .verdict import Failure, Result, Verdict, Violation

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ApiKey",
    "CheckOptions",
    "ExitCode",
    "Facts",
    "Failure",
    "InitResult",
    "NetworkError",
    "Policy",
    "PolicyError",
    "PreflightError",
    "ProbeError",
    "Result",
    "UsageError",
    "Verdict",
    "VideoRejected",
    "VideoUnreadable",
    "Violation",
    "__version__",
    "check",
    "check_one",
    "init_session",
    "iter_check",
    "judge",
    "load_policy",
    "probe",
    "validate_request",
    "validate_response",
]
