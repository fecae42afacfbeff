"""Exit codes of the `preflight` command, and the one mapping from error types to them.

Scripts branch on these numbers, so they never change meaning.
"""

from __future__ import annotations

from enum import IntEnum

from .errors import (
    ApiError,
    LedgerError,
    PreflightError,
    ProbeError,
    SessionUnrecorded,
    StagingError,
    UnsettledAttempt,
    UsageError,
    VideoRejected,
)


class ExitCode(IntEnum):
    OK = 0  # every source passed
    REJECTED = 1  # at least one source breaks a rule (and none errored)
    USAGE = 2  # bad options, bad policy file, a request body the schema refuses, a bad ledger
    PROBE_ERROR = 3  # at least one source could not be read; wins over REJECTED
    # The API refused or failed (used by `init`); also kind `unrecorded`: the ledger failed
    # after a request was sent, and a session the API opened (its id is printed) is not recorded.
    API_ERROR = 4  # also `stage`: the S3-compatible storage refused or failed
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it
    TERMINATED = 143  # SIGTERM: 128 + 15, likewise


# First match wins, so a subclass listed after its base would never be reached.
_EXIT_CODES: tuple[tuple[type[PreflightError], ExitCode], ...] = (
    (UsageError, ExitCode.USAGE),
    # A LedgerError is raised only before anything was sent (after a send it becomes
    # SessionUnrecorded): like a bad option, nothing happened and the fix is the user's.
    (LedgerError, ExitCode.USAGE),
    (VideoRejected, ExitCode.REJECTED),
    (ProbeError, ExitCode.PROBE_ERROR),  # VideoUnreadable too
    (ApiError, ExitCode.API_ERROR),
    (SessionUnrecorded, ExitCode.API_ERROR),
    # Kind `ambiguous`: an earlier attempt may have billed, so nothing was sent this time.
    (UnsettledAttempt, ExitCode.API_ERROR),
    # The storage refused or failed (`stage`): like the API, a remote service said no.
    (StagingError, ExitCode.API_ERROR),
)


def exit_code_for_error(error: PreflightError) -> ExitCode:
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return ExitCode.API_ERROR  # any other failure of `init` (a NetworkError, say)


def exit_code_for_verdicts(verdicts: list[str]) -> ExitCode:
    if "error" in verdicts:
        return ExitCode.PROBE_ERROR
    if "reject" in verdicts:
        return ExitCode.REJECTED
    return ExitCode.OK
