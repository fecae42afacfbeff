"""The options of the `preflight` command: one argparse parser, its subcommands and their flags.

Only the shape of the command line lives here, and which function of commands.py runs each
subcommand (set_defaults(handler=...)); the choices come from the library's own tuples.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..status import ExitCode
from . import commands, options
from .sessions import run_sessions

# The names of report.REPORTERS and completion.SHELLS, spelled out so that parsing loads no
# reporter and no completion code (a test keeps each pair equal).
FORMATS = ("text", "json", "jsonl", "github")
SHELLS = ("bash", "zsh", "fish")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"preflight: error: {message}\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument; given the width, it does not import
        # shutil (and with it bz2, lzma) to ask for it.
        # (typeshed's protocol for formatter_class names `prog` only; every HelpFormatter takes
        # `width` too.)
        return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]


def _help_width() -> int:
    """shutil.get_terminal_size().columns - 2, the width argparse wraps help at by default."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stream = sys.__stdout__
        try:
            columns = os.get_terminal_size(stream.fileno()).columns if stream else 0
        except (ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


_Subcommands = argparse._SubParsersAction  # what add_subparsers returns


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; or, when `argv` starts with a subcommand's name, the top level
    with that one subcommand only: a run uses one, and building all ten costs ~5 ms."""
    parser = _Parser(
        prog="preflight",
        description="Check MP4/MOV videos against the Kling multi-elements init-selection limits "
        "before sending them.",
    )
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    wanted = argv[0] if argv and argv[0] in _SUBCOMMANDS else None
    for name, add in _SUBCOMMANDS.items():
        if wanted in (None, name):
            add(subcommands)
    return parser


def _add_check(subcommands: _Subcommands[_Parser]) -> None:
    check = subcommands.add_parser(
        "check",
        help="probe and judge local files, folders and http(s) URLs",
        description="Probe each SOURCE and judge it against the policy. Exit 0 all pass, "
        "1 some reject, 3 some could not be read (wins over 1), 2 usage error.",
    )
    check.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="MP4/MOV files, folders, http(s) URLs and Kling videos (kling:TASK_ID/VIDEO_ID), "
        "mixed",
    )
    inputs = check.add_argument_group("inputs")
    inputs.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="descend into sub-folders of the folders named",
    )
    inputs.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="file names to take from folders (repeatable; default *.mp4 *.mov "
        "*.m4v, case-insensitive)",
    )
    inputs.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        default=[],
        help="file names to leave out of folders (repeatable)",
    )
    inputs.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read sources from FILE, one a line (- for standard input)",
    )
    batch = check.add_argument_group("batches")
    batch.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="sources checked at once (default: up to 4 for files, 64 with URLs)",
    )
    batch.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="probe on a Dask cluster: a scheduler (tcp://host:8786; workers must see the "
        "paths) or local[:N] worker processes here; needs pip install 'preflight[dask]'",
    )
    batch.add_argument(
        "--dask-timeout",
        type=options.positive,
        default=60.0,
        metavar="S",
        help="with --dask: how long to wait for a worker to join the scheduler (at the start, "
        "and when every worker has left) before giving up (default 60)",
    )
    batch.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    batch.add_argument(
        "--no-cache",
        action="store_true",
        help="probe everything again (the cache lives in the ledger file)",
    )
    options.add_ledger_option(check)
    reports = check.add_argument_group("reports (written besides the normal output)")
    reports.add_argument("--junit", metavar="FILE", help="JUnit XML, one test case per source")
    reports.add_argument("--csv", metavar="FILE", help="CSV, one row per source")
    reports.add_argument(
        "--html", metavar="FILE", help="one self-contained HTML page for editors, with thumbnails"
    )
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document at the end")
    output.add_argument(
        "--jsonl", action="store_true", help="one JSON object per line, as each finishes"
    )
    output.add_argument(
        "--format",
        choices=FORMATS,
        help="what stdout shows: text (default), json (= --json), jsonl (= --jsonl), github "
        "(GitHub Actions annotations: ::error/::warning per problem)",
    )
    options.add_policy_options(check)
    options.add_probe_options(check)
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    options.add_remote_options(check)
    options.add_kling_options(check, with_account=True)
    check.set_defaults(handler=commands.run_check)


def _add_validate(subcommands: _Subcommands[_Parser]) -> None:
    validate = subcommands.add_parser(
        "validate-request",
        help="validate an init-selection request body",
        description="Validate a JSON request body against the shipped schema "
        "schemas/init-selection.request.schema.json. Exit 0 valid, 2 invalid or unreadable.",
    )
    validate.add_argument("body", metavar="BODY.json", help="a file, or - for standard input")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    validate.set_defaults(handler=commands.run_validate_request)


def _add_policy(subcommands: _Subcommands[_Parser]) -> None:
    policy = subcommands.add_parser(
        "policy",
        help="print the effective policy as JSON",
        description="Print the policy that check would apply, after 'extends' is resolved; "
        "stderr says where it came from.",
    )
    options.add_policy_options(policy)
    policy.set_defaults(handler=commands.run_policy)


def _add_init(subcommands: _Subcommands[_Parser]) -> None:
    init = subcommands.add_parser(
        "init",
        help="pre-flight a video, then open an editing session (init-selection)",
        description="Check the video, validate the body, send init-selection and record the "
        "session in the ledger. Exit 0 opened or reused, 1 rejected (nothing sent), 2 usage, "
        "3 unreadable (nothing sent), 4 the API refused or failed.",
    )
    target = init.add_argument_group("the video (one of)")
    target.add_argument("--video-url", metavar="URL", help="an http(s) URL the API will fetch")
    target.add_argument("--video-id", metavar="ID", help="a video Kling generated (with --task-id)")
    target.add_argument("--task-id", metavar="ID", help="the task that generated --video-id")
    target.add_argument("--file", metavar="FILE", help="a local video: stage it first (--stage)")
    init.add_argument("--stage", metavar="s3://BUCKET/PREFIX/", help="where --file is uploaded")
    options.add_expires_option(init)
    init.add_argument("--json", action="store_true", help="print one JSON object")
    init.add_argument("--dry-run", action="store_true", help="do everything but send")
    init.add_argument(
        "--force",
        action="store_true",
        help="open a new session even if the ledger has an unexpired one",
    )
    init.add_argument(
        "--api-base",
        metavar="URL",
        help="API base URL (default $PREFLIGHT_API_BASE or https://api.cometapi.com)",
    )
    init.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="read the key from FILE (not world-readable) instead of $COMETAPI_KEY",
    )
    init.add_argument(
        "--debug",
        action="store_true",
        help="trace the request and answer on stderr (the key is redacted)",
    )
    options.add_ledger_option(init)
    options.add_policy_options(init)
    options.add_probe_options(init)
    options.add_remote_options(init)
    options.add_kling_options(init, with_account=False)
    init.set_defaults(handler=commands.run_init)


def _add_stage(subcommands: _Subcommands[_Parser]) -> None:
    stage = subcommands.add_parser(
        "stage",
        help="check local videos, upload them to S3-compatible storage, print presigned URLs",
        description="Check each FILE, upload a passing one under PREFIX/SHA256/NAME (never twice), "
        "presign a GET and check that URL remotely. Needs pip install 'preflight[s3]'; the AWS "
        "chain (env, ~/.aws/config, AWS_ENDPOINT_URL) gives credentials. Exit codes as for check; "
        "4 the storage refused or failed.",
    )
    stage.add_argument("files", nargs="+", metavar="FILE")
    stage.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX/")
    options.add_expires_option(stage)
    stage.add_argument("--json", action="store_true", help="one JSON document at the end")
    options.add_policy_options(stage)
    options.add_probe_options(stage)
    options.add_remote_options(stage)
    stage.set_defaults(handler=commands.run_stage, no_cache=True, ledger=None)


def _add_sessions(subcommands: _Subcommands[_Parser]) -> None:
    sessions = subcommands.add_parser(
        "sessions",
        help="list recorded sessions, or show one, or record one by hand; list risky attempts",
        description="preflight sessions [--active] [--json] | preflight sessions show SESSION_ID"
        " | preflight sessions --attempts [--json] | preflight sessions import SESSION_ID"
        " --source SOURCE [--expires ISO8601]",
    )
    sessions.add_argument("action", nargs="*", metavar="show|import SESSION_ID")
    sessions.add_argument("--active", action="store_true", help="only unexpired sessions")
    sessions.add_argument(
        "--attempts",
        action="store_true",
        help="list the attempts that may have billed: sending, ambiguous, contended",
    )
    sessions.add_argument("--json", action="store_true")
    record = sessions.add_argument_group("import (the account is the current API base and key)")
    record.add_argument(
        "--source", metavar="SOURCE", help="the source as init printed it (a URL or video_id=...)"
    )
    record.add_argument(
        "--expires",
        metavar="ISO8601",
        help="when the session expires (default 24 h from now), e.g. 2026-12-08T10:00:00Z",
    )
    record.add_argument("--api-base", metavar="URL", help="as for init")
    record.add_argument("--api-key-file", metavar="FILE", help="as for init")
    options.add_ledger_option(sessions)
    sessions.set_defaults(handler=run_sessions)


def _add_watch(subcommands: _Subcommands[_Parser]) -> None:
    watch = subcommands.add_parser(
        "watch",
        help="judge each new or changed MP4/MOV in a folder once its writer is done",
        description="Watch DIR: each new or changed video is judged once it has stopped growing "
        "and (where inotify tells) its writer has closed it; one that reads as unfinished (no "
        "moov, truncated) is held in place and judged again when it changes. Verdicts go to "
        "DIR/.preflight/verdicts.jsonl. Ctrl-C stops it.",
    )
    watch.add_argument("folder", metavar="DIR")
    watch.add_argument(
        "--sort",
        action="store_true",
        help="move judged files into DIR/passed/ or DIR/rejected/ (never "
        "overwriting), with a .preflight.json report beside rejected ones",
    )
    watch.add_argument(
        "--fix",
        action="store_true",
        help="with --sort: a rejected file that can be fixed also gets a re-checked fixed copy "
        "(NAME.fixed.mp4) in DIR/passed/; fixes run one at a time beside the judging, each "
        "printed and logged",
    )
    watch.add_argument(
        "--interval",
        type=options.positive,
        default=1.0,
        metavar="S",
        help="seconds between scans (default 1)",
    )
    watch.add_argument(
        "--settle",
        type=options.positive,
        default=2.0,
        metavar="S",
        help="a file must stay unchanged this long before it is judged (default 2)",
    )
    watch.add_argument("-r", "--recursive", action="store_true")
    watch.add_argument("--include", action="append", metavar="GLOB")
    options.add_policy_options(watch)
    options.add_probe_options(watch)
    watch.set_defaults(handler=commands.run_watch)


def _add_sandbox(subcommands: _Subcommands[_Parser]) -> None:
    sandbox = subcommands.add_parser(
        "sandbox",
        help="run the loopback stand-in of the API (no key, no network)",
        description="Serve init-selection on loopback as API.md describes, for demos and tests.",
    )
    sandbox.add_argument(
        "--port", type=options.port, default=0, help="0 picks a free port (default)"
    )
    sandbox.add_argument("--key", help="the API key it accepts (default: a demo key)")
    sandbox.add_argument(
        "--foreground",
        action="store_true",
        help="serve here until Ctrl-C (default: in the background, printing `export` lines "
        "for eval, with PREFLIGHT_SANDBOX_PID to kill it)",
    )
    sandbox.set_defaults(handler=commands.run_sandbox)


def _add_completion(subcommands: _Subcommands[_Parser]) -> None:
    completion = subcommands.add_parser(
        "completion",
        help="print a shell completion script",
        description='Print the completion script for SHELL: bash (eval "$(preflight completion '
        'bash)"), zsh (source <(preflight completion zsh)), fish (preflight completion fish '
        "| source).",
    )
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(handler=commands.run_completion, build_parser=build_parser)


def _add_fix(subcommands: _Subcommands[_Parser]) -> None:
    fix = subcommands.add_parser(
        "fix",
        help="make rejected local videos pass: lossless where the file allows, re-checked",
        description="Plan the least destructive fix for each SOURCE, run it with ffmpeg into a "
        "temporary file, re-check it under the same policy and only then write NAME.fixed.mp4 "
        "(never over the source, never over an existing file without --force). Exit 0 every "
        "output passes (or nothing to fix), 1 some source cannot be made to pass (nothing "
        "written for it), 3 some source could not be read, 2 usage error.",
    )
    fix.add_argument("sources", nargs="+", metavar="SOURCE", help="local video files or folders")
    where = fix.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="the output file (one SOURCE only)")
    where.add_argument(
        "--out-dir", metavar="DIR", help="write NAME.fixed.mp4 here (default: beside the source)"
    )
    fix.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    fix.add_argument("--force", action="store_true", help="replace an existing output file")
    fix.add_argument(
        "--extend",
        choices=("freeze", "loop", "slow"),
        help="lengthen clips that are too short, or between two duration windows (default: "
        "too short -> freeze; between windows -> cut): freeze holds the last frame, loop plays "
        "it again, slow slows picture and sound down",
    )
    fix.add_argument(
        "--ten-bit",
        choices=("hevc", "h264"),
        default="hevc",
        help="what a 10-bit source that is not HEVC becomes when re-encoded: hevc (HEVC Main 10, "
        "the default: hardware decoders play it, few play H.264 High 10) or h264 (8-bit H.264, "
        "the extra depth lost, a note says so)",
    )
    fix.add_argument(
        "--preset",
        choices=(
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        ),
        help="x264/x265 preset for re-encodes: speed against size (default veryfast; the CRF "
        "keeps the quality)",
    )
    fix.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="sources fixed at once (default 1: ffmpeg already uses every core)",
    )
    fix.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    output = fix.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document at the end")
    output.add_argument(
        "--jsonl", action="store_true", help="one JSON object per line, as each finishes"
    )
    options.add_policy_options(fix)
    fix.set_defaults(handler=commands.run_fix)


# In the order `preflight --help` lists them.
_SUBCOMMANDS: dict[str, Callable[[_Subcommands[_Parser]], None]] = {
    "check": _add_check,
    "fix": _add_fix,
    "validate-request": _add_validate,
    "policy": _add_policy,
    "init": _add_init,
    "stage": _add_stage,
    "sessions": _add_sessions,
    "watch": _add_watch,
    "sandbox": _add_sandbox,
    "completion": _add_completion,
}
