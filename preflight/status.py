"""Exit codes of the `preflight` command, and the one mapping from error types to them.

Scripts branch on these numbers, so they never change meaning.
"""

from __future__ import annotations

from enum import IntEnum

from .errors import PreflightError, ProbeError, UsageError, VideoRejected


class ExitCode(IntEnum):
    OK = 0  # every source passed
    REJECTED = 1  # at least one source breaks a rule (and none errored)
    USAGE = 2  # bad options, bad policy file, a request body the schema refuses
    PROBE_ERROR = 3  # at least one source could not be read; wins over REJECTED
    # The API refused or failed (used by `init`); also kind `unrecorded`: the ledger failed
    # after a request was sent, and a session the API opened (its id is printed) is not recorded.
    API_ERROR = 4
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


def exit_code_for_error(error: PreflightError) -> ExitCode:
    if isinstance(error, UsageError):
        return ExitCode.USAGE
    if isinstance(error, VideoRejected):
        return ExitCode.REJECTED
    if isinstance(error, ProbeError):
        return ExitCode.PROBE_ERROR
    return ExitCode.API_ERROR


def exit_code_for_verdicts(verdicts: list[str]) -> ExitCode:
    if "error" in verdicts:
        return ExitCode.PROBE_ERROR
    if "reject" in verdicts:
        return ExitCode.REJECTED
    return ExitCode.OK
