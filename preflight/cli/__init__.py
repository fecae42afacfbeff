"""The `preflight` command: parser.py holds the shape of the command line, commands.py one function
per subcommand; main() parses, runs the subcommand's function, and is the one error handler.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from ..errors import PreflightError
from ..status import ExitCode, exit_code_for_error
from .parser import build_parser

__all__ = ["main"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager, `kill`, a CI timeout): raised in the main thread so every
    cleanup Ctrl-C runs (ffmpeg and backend children killed, temp files removed) runs for it too."""


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


def _never_raise_on_output() -> None:
    """No output encoding makes preflight raise: a character the stream cannot encode (`✗` with
    PYTHONIOENCODING=ascii, a stray surrogate on a strict UTF-8 stream) is written as its
    backslash escape. The reporters already escape names; this is the net under all of it."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on a replaced stream
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _warn_of_a_password(ledger: str | None) -> None:
    """A password in --ledger is on the command line: `ps` shows it to every user for the
    whole run. One line says where psycopg (libpq) reads it from instead."""
    # The schemes are ledger.dsn.DSN_SCHEMES, spelled here so that a command without a
    # DSN does not load the ledger package (test_startup counts what `check` loads).
    if not ledger or not ledger.startswith(("postgresql://", "postgres://")):
        return
    from ..ledger.dsn import dsn_password

    if dsn_password(ledger):
        print(
            "preflight: warning: the --ledger DSN holds a password, which other users can see "
            "(ps): put it in PGPASSWORD, ~/.pgpass or a PGSERVICE entry instead",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """The console script (pyproject: preflight.cli:main), also run by `python -m preflight`."""
    _never_raise_on_output()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)  # only the subcommand argv names, when it names one
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    signal.signal(signal.SIGTERM, _terminate)
    _warn_of_a_password(getattr(args, "ledger", None))
    try:
        code: int = args.handler(args)  # set by each subcommand's parser (parser.py)
        return code
    except PreflightError as exc:
        from ..report.printable import shown  # the message may quote a name or a policy field

        hint = exc.hint
        print(shown(f"preflight: {exc}" + (f" ({hint})" if hint else "")), file=sys.stderr)
        return exit_code_for_error(exc)
    except Terminated:
        print("preflight: terminated", file=sys.stderr)
        return ExitCode.TERMINATED
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing left to say, and nothing to report.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
