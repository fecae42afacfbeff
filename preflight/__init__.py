"""preflight: check videos against the Kling multi-elements init-selection limits before sending.

The library is the product; the `preflight` command is a thin layer over these names. They load on
first use (PEP 562), so a cached `preflight check` does not pay for requests or jsonschema.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "ApiError": "client",
    "ApiKey": "client",
    "ExitCode": "status",
    "Facts": "facts",
    "Failure": "verdict",
    "Result": "verdict",
    "Verdict": "verdict",
    "Violation": "verdict",
    "InitResult": "init",
    "init_session": "init",
    "NetworkError": "errors",
    "PolicyError": "errors",
    "PreflightError": "errors",
    "ProbeError": "errors",
    "UsageError": "errors",
    "VideoRejected": "errors",
    "VideoUnreadable": "errors",
    "Policy": "policy",
    "judge": "policy",
    "load_policy": "policy",
    "validate_request": "request",
    "validate_response": "request",
}

# Eager, unlike the rest: these names are also submodules (preflight.probe, preflight.check),
# and importing a submodule would otherwise bind the module here in place of the function.
from .check import CheckOptions, check, check_one, iter_check  # noqa: E402
from .probe import probe  # noqa: E402

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


if TYPE_CHECKING:
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
    from .request import validate_request, validate_response
    from .status import ExitCode
    from .verdict import Failure, Result, Verdict, Violation
