"""The `preflight` command: parse options, call the library, hand results to a reporter, exit.

No policy logic lives here; every error type maps to an exit code through status.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from . import __version__
from .errors import PreflightError, UsageError
from .status import ExitCode, exit_code_for_error, exit_code_for_verdicts

if TYPE_CHECKING:
    from .check import CheckOptions


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
        "sources", nargs="+", metavar="SOURCE", help="MP4/MOV files and http(s) URLs, mixed"
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
    return parser


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
    from .probe.remote import RemoteOptions

    remote = RemoteOptions(
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        max_prefix_bytes=int(args.max_prefix_mib * 1024 * 1024),
    )
    return CheckOptions(
        backend=args.probe, remote=remote, allow_private_urls=args.allow_private_urls
    )


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
        return _policy(args)
    except PreflightError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
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
    from .check import check_one
    from .policy import load_policy
    from .report import make_reporter, summarize

    policy = load_policy(args.policy, profile=args.profile)
    mode = "json" if args.json else "jsonl" if args.jsonl else "text"
    reporter = make_reporter(mode, sys.stdout, color=_use_color(args.color, sys.stdout))
    options = _check_options(args)
    results = []
    for source in args.sources:
        result = check_one(source, policy, options=options)
        results.append(result)
        reporter.result(result)
    code = exit_code_for_verdicts([r.verdict for r in results])
    reporter.finish(results, summarize(results, policy=policy.name, exit_code=int(code)))
    return code


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


def _policy(args: argparse.Namespace) -> int:
    from .policy import load_policy

    policy = load_policy(args.policy, profile=args.profile)
    print(json.dumps(policy.to_dict(), indent=2))
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
