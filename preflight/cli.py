"""The `preflight` command: parse options, call the library, hand results to a reporter, exit.

No policy logic lives here; every error type maps to an exit code through status.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from . import __version__
from .errors import PreflightError, UsageError
from .status import ExitCode, exit_code_for_error, exit_code_for_verdicts

if TYPE_CHECKING:
    from .cache import ProbeCache
    from .check import CheckOptions
    from .policy import Policy
    from .verdict import Result


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"preflight: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="preflight",
        description="Check MP4/MOV videos against the Kling multi-elements init-selection limits "
        "before sending them.",
    )
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser(
        "check",
        help="probe and judge local files",
        description="Probe each SOURCE and judge it against the policy. Exit 0 all pass, "
        "1 some reject, 3 some could not be read (wins over 1), 2 usage error.",
    )
    check.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="MP4/MOV files, folders and http(s) URLs, mixed",
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
        help="sources checked at once (default: up to 4 for files, 8 with URLs)",
    )
    batch.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    batch.add_argument(
        "--no-cache",
        action="store_true",
        help="probe everything again (the cache lives in the ledger file)",
    )
    _add_ledger_option(check)
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
    _add_policy_options(check)
    check.add_argument(
        "--probe",
        choices=("mediainfo", "ffprobe", "both"),
        default="mediainfo",
        help="probe backend (default mediainfo; both reports their disagreements)",
    )
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    _add_remote_options(check)

    validate = commands.add_parser(
        "validate-request",
        help="validate an init-selection request body",
        description="Validate a JSON request body against schemas/init-selection.request.schema."
        "json. Exit 0 valid, 2 invalid or unreadable.",
    )
    validate.add_argument("body", metavar="BODY.json", help="a file, or - for standard input")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")

    policy = commands.add_parser(
        "policy",
        help="print the effective policy as JSON",
        description="Print the policy that check would apply, after 'extends' is resolved.",
    )
    _add_policy_options(policy)

    init = commands.add_parser(
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
    _add_ledger_option(init)
    _add_policy_options(init)
    init.add_argument("--probe", choices=("mediainfo", "ffprobe", "both"), default="mediainfo")
    _add_remote_options(init)

    sessions = commands.add_parser(
        "sessions",
        help="list recorded sessions, or show one",
        description="preflight sessions [--active] [--json] | preflight sessions show SESSION_ID",
    )
    sessions.add_argument("action", nargs="*", metavar="show SESSION_ID")
    sessions.add_argument("--active", action="store_true", help="only unexpired sessions")
    sessions.add_argument("--json", action="store_true")
    _add_ledger_option(sessions)

    watch = commands.add_parser(
        "watch",
        help="judge each new or changed MP4/MOV in a folder once it stops growing",
        description="Watch DIR: each new or changed video is judged once it has stopped growing; "
        "verdicts go to DIR/.preflight/verdicts.jsonl. Ctrl-C stops it.",
    )
    watch.add_argument("folder", metavar="DIR")
    watch.add_argument(
        "--sort",
        action="store_true",
        help="move judged files into DIR/passed/ or DIR/rejected/ (never "
        "overwriting), with a .preflight.json report beside rejected ones",
    )
    watch.add_argument(
        "--interval",
        type=_positive,
        default=1.0,
        metavar="S",
        help="seconds between scans (default 1)",
    )
    watch.add_argument(
        "--settle",
        type=_positive,
        default=2.0,
        metavar="S",
        help="a file must stay unchanged this long before it is judged (default 2)",
    )
    watch.add_argument("-r", "--recursive", action="store_true")
    watch.add_argument("--include", action="append", metavar="GLOB")
    _add_policy_options(watch)
    watch.add_argument("--probe", choices=("mediainfo", "ffprobe", "both"), default="mediainfo")

    sandbox = commands.add_parser(
        "sandbox",
        help="run the loopback stand-in of the API (no key, no network)",
        description="Serve init-selection on loopback as API.md describes, for demos and tests.",
    )
    sandbox.add_argument("--port", type=int, default=0)
    sandbox.add_argument("--key", help="the API key it accepts (default: a demo key)")
    return parser


def _add_ledger_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger",
        metavar="PATH",
        help="SQLite ledger (default $PREFLIGHT_LEDGER or the user data folder)",
    )


def _add_remote_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("URLs")
    group.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="a URL on a private, loopback or link-local address is a warning, "
        "not a reject (the API cannot fetch it; for tests and local demos)",
    )
    group.add_argument(
        "--connect-timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="seconds to wait for a connection (default 10)",
    )
    group.add_argument(
        "--read-timeout",
        type=_positive,
        default=30.0,
        metavar="S",
        help="seconds to wait for data before giving up (default 30)",
    )
    group.add_argument(
        "--max-prefix-mib",
        type=_positive,
        default=32.0,
        metavar="MIB",
        help="from a server without Range support, read at most this much (default 32)",
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def _check_options(args: argparse.Namespace) -> CheckOptions:
    from .check import CheckOptions
    from .probe.options import RemoteOptions

    cache = None
    if getattr(args, "no_cache", True) is False:
        cache = _open_cache(args.ledger)
    remote = RemoteOptions(
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        max_prefix_bytes=int(args.max_prefix_mib * 1024 * 1024),
    )
    return CheckOptions(
        backend=args.probe, remote=remote, allow_private_urls=args.allow_private_urls, cache=cache
    )


def _open_cache(ledger: str | None) -> ProbeCache | None:
    from .cache import ProbeCache
    from .ledger import LedgerError, default_path

    try:
        return ProbeCache(ledger or default_path())
    except LedgerError as exc:
        # A cache is an optimisation: without one every source is probed, which is still right.
        print(f"preflight: warning: no probe cache ({exc})", file=sys.stderr)
        return None


def _add_policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--profile",
        choices=("cometapi", "kling"),
        help="a shipped policy profile (default cometapi)",
    )
    group.add_argument("--policy", metavar="FILE", help="a house policy JSON file")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "validate-request":
            return _validate_request(args)
        if args.command == "init":
            return _init(args)
        if args.command == "sessions":
            return _sessions(args)
        if args.command == "sandbox":
            return _sandbox(args)
        if args.command == "watch":
            return _watch(args)
        return _policy(args)
    except PreflightError as exc:
        hint = getattr(exc, "hint", "")
        print(f"preflight: {exc}" + (f" ({hint})" if hint else ""), file=sys.stderr)
        return exit_code_for_error(exc)
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing left to say, and nothing to report.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK


def _check(args: argparse.Namespace) -> int:
    from .batch import InOrder, default_workers, run_batch
    from .policy import load_policy
    from .progress import Progress
    from .report import make_reporter, summarize
    from .sources import DEFAULT_INCLUDE, expand_sources

    policy = load_policy(args.policy, profile=args.profile)
    sources = expand_sources(
        args.sources,
        recursive=args.recursive,
        include=args.include or DEFAULT_INCLUDE,
        exclude=args.exclude,
        from_file=args.from_file,
    )
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    options = _check_options(args)
    mode = "json" if args.json else "jsonl" if args.jsonl else "text"
    reporter = make_reporter(mode, sys.stdout, color=_use_color(args.color, sys.stdout))
    progress = Progress(len(sources), sys.stderr, enabled=not args.quiet and sys.stderr.isatty())
    ordered = InOrder(reporter.result)

    def on_result(index: int, result: Result) -> None:
        progress.update(result.verdict)
        if mode == "jsonl":
            reporter.result(result)  # completion order: a script sees each as soon as it is done
        else:
            ordered(index, result)

    try:
        results = run_batch(
            sources,
            policy,
            options,
            workers=args.workers or default_workers(sources),
            on_result=on_result,
        )
    finally:
        progress.close()
        if options.cache is not None:
            options.cache.close()
    code = exit_code_for_verdicts([r.verdict for r in results])
    reporter.finish(results, summarize(results, policy=policy.name, exit_code=int(code)))
    _write_reports(args, results, policy)
    return code


def _write_reports(args: argparse.Namespace, results: list[Result], policy: Policy) -> None:
    for flag, module in (("junit", "junit"), ("csv", "csv_report"), ("html", "html")):
        path = getattr(args, flag)
        if not path:
            continue
        writer = importlib.import_module(f".report.{module}", __package__)
        try:
            writer.write(results, path, policy=policy)
        except OSError as exc:
            raise UsageError(f"cannot write --{flag} {path}: {exc.strerror or exc}") from None


def _use_color(choice: str, stream: IO[str]) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _validate_request(args: argparse.Namespace) -> int:
    from .request import validate_request

    body = _read_json_arg(args.body)
    problems = validate_request(body)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": not problems,
                    "problems": [{"path": p.path, "message": p.message} for p in problems],
                },
                indent=2,
            )
        )
    elif problems:
        for problem in problems:
            print(f"{problem.path}: {problem.message}")
    else:
        print("valid: the body matches init-selection.request.schema.json")
    return ExitCode.USAGE if problems else ExitCode.OK


def _read_json_arg(name: str) -> object:
    try:
        if name == "-":
            text = sys.stdin.read()
        else:
            with open(name, encoding="utf-8") as f:
                text = f.read()
    except FileNotFoundError:
        raise UsageError(f"no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {name}: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} is not JSON: {exc}") from None


def _init(args: argparse.Namespace) -> int:
    from .client import debug_stream
    from .errors import VideoRejected, VideoUnreadable
    from .init import init_session
    from .policy import load_policy
    from .report.sessions import print_init, print_init_error

    if args.video_url is None and args.video_id is None:
        raise UsageError("give --video-url URL, or --video-id ID with --task-id ID")
    try:
        result = init_session(
            video_url=args.video_url,
            video_id=args.video_id,
            task_id=args.task_id,
            policy=load_policy(args.policy, profile=args.profile),
            options=_check_options(args),
            api_base=args.api_base,
            api_key_file=args.api_key_file,
            ledger=args.ledger,
            force=args.force,
            dry_run=args.dry_run,
            debug=debug_stream(args.debug),
        )
    except (VideoRejected, VideoUnreadable) as exc:
        from .report import make_reporter

        verdict = "reject" if isinstance(exc, VideoRejected) else "error"
        if args.json:
            print_init_error(exc, exc.result, sys.stdout, as_json=True, verdict=verdict)
        else:
            make_reporter("text", sys.stderr).result(exc.result)  # type: ignore[arg-type]
        raise
    except PreflightError as exc:
        print_init_error(exc, None, sys.stdout, as_json=args.json, verdict="pass")
        raise
    print_init(result, sys.stdout, as_json=args.json)
    return ExitCode.OK


def _sessions(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from .ledger import Ledger, default_path
    from .report.sessions import print_sessions

    with Ledger(args.ledger or default_path()) as ledger:
        if not args.action:
            rows = ledger.sessions(active_only=args.active)
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            print_sessions(rows, sys.stdout, as_json=args.json, now=now)
            return ExitCode.OK
        if len(args.action) != 2 or args.action[0] != "show":
            raise UsageError(
                "usage: preflight sessions [--active] [--json] | preflight sessions show SESSION_ID"
            )
        row = ledger.session(args.action[1])
        if row is None:
            raise UsageError(f"no session {args.action[1]} in {ledger.path}")
        print(json.dumps(row.to_dict(), indent=2))
        return ExitCode.OK


def _watch(args: argparse.Namespace) -> int:
    from .check import CheckOptions
    from .policy import load_policy
    from .sources import DEFAULT_INCLUDE
    from .watch import WatchOptions, main_loop

    options = WatchOptions(
        interval_s=args.interval,
        settle_s=args.settle,
        sort=args.sort,
        include=tuple(args.include or DEFAULT_INCLUDE),
        recursive=args.recursive,
    )
    print(f"watching {args.folder} (Ctrl-C stops)", file=sys.stderr)
    return main_loop(
        args.folder,
        policy=load_policy(args.policy, profile=args.profile),
        check_options=CheckOptions(backend=args.probe),
        options=options,
        out=sys.stdout,
    )


def _sandbox(args: argparse.Namespace) -> int:
    from .sandbox import serve_forever_cli

    argv = ["--port", str(args.port)] + (["--key", args.key] if args.key else [])
    return serve_forever_cli(argv)


def _policy(args: argparse.Namespace) -> int:
    from .policy import load_policy

    policy = load_policy(args.policy, profile=args.profile)
    print(json.dumps(policy.to_dict(), indent=2))
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
