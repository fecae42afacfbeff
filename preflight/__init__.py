"""preflight: check videos against the Kling multi-elements init-selection limits before sending.

The library is the product; the `preflight` command is a thin layer over these names. They load on
first use (PEP 562), so a cached `preflight check` does not pay for requests or jsonschema.
"""

from __future__ import annotations

from importlib import import_module

# typing.TYPE_CHECKING's value, without importing typing (and re with it) for `import preflight`;
# mypy reads a name TYPE_CHECKING as true either way.
TYPE_CHECKING = False

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "ApiError": "errors",
    "ApiKey": "session.credentials",
    "CheckOptions": "pipeline",
    "ClaimLost": "errors",
    "ExitCode": "status",
    "Facts": "facts",
    "Failure": "verdict",
    "FixResult": "fixing.result",
    "InitResult": "session",
    "LedgerBusy": "errors",
    "LedgerError": "errors",
    "NetworkError": "errors",
    "Policy": "policy",
    "PolicyError": "errors",
    "PreflightError": "errors",
    "ProbeError": "errors",
    "ProbeLimits": "probing.limits",
    "Result": "verdict",
    "SessionUnrecorded": "errors",
    "UnsettledAttempt": "errors",
    "UsageError": "errors",
    "Verdict": "verdict",
    "VideoRejected": "errors",
    "VideoUnreadable": "errors",
    "Violation": "verdict",
    "check": "pipeline",
    "check_one": "pipeline",
    "fix": "fixing.run",
    "init_session": "session",
    "iter_check": "pipeline",
    "judge": "policy",
    "load_policy": "policy",
    "probe": "probing",
    "validate_request": "session.schemas",
    "validate_response": "session.schemas",
}

__all__ = [
    "ApiError",
    "ApiKey",
    "CheckOptions",
    "ClaimLost",
    "ExitCode",
    "Facts",
    "Failure",
    "FixResult",
    "InitResult",
    "LedgerBusy",
    "LedgerError",
    "NetworkError",
    "Policy",
    "PolicyError",
    "PreflightError",
    "ProbeError",
    "ProbeLimits",
    "Result",
    "SessionUnrecorded",
    "UnsettledAttempt",
    "UsageError",
    "Verdict",
    "VideoRejected",
    "VideoUnreadable",
    "Violation",
    "__version__",
    "check",
    "check_one",
    "fix",
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


def __dir__() -> list[str]:
    # The public names load on first use, so they are not in globals() until then: list them
    # anyway (dir(preflight), tab completion in a REPL), beside what is already loaded.
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from typing import Any

    from .errors import (
        ApiError,
        ClaimLost,
        LedgerBusy,
        LedgerError,
        NetworkError,
        PolicyError,
        PreflightError,
        ProbeError,
        SessionUnrecorded,
        UnsettledAttempt,
        UsageError,
        VideoRejected,
        VideoUnreadable,
    )
    from .facts import Facts
    from .fixing.result import FixResult
    from .fixing.run import fix
    from .pipeline import CheckOptions, check, check_one, iter_check
    from .policy import Policy, judge, load_policy
    from .probing import probe
    from .probing.limits import ProbeLimits
    from .session import InitResult, init_session
    from .session.credentials import ApiKey
    from .session.schemas import validate_request, validate_response
    from .status import ExitCode
    from .verdict import Failure, Result, Verdict, Violation
