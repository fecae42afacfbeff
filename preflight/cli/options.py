"""The option groups several subcommands share (probe, URLs, policy, ledger, expiry) and the
argparse types they use; parser.py builds each subcommand from them.
"""

from __future__ import annotations

import argparse
import math

from ..policy import PROFILES
from ..probing.limits import DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S
from ..probing.names import BACKENDS
from ..probing.options import DEFAULT_DEADLINE_S, DEFAULT_PER_HOST
from ..sources import TASK_ACTIONS


def add_expires_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expires",
        type=whole,
        default=3600,
        metavar="S",
        help="seconds the presigned URL stays valid: 3600 (default, the least) to 604800",
    )


def add_ledger_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger",
        metavar="PATH|DSN",
        help="the ledger: a SQLite file, or a postgresql:// DSN shared between machines "
        "(default $PREFLIGHT_LEDGER or a file in the user data folder)",
    )


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("probe")
    group.add_argument(
        "--probe",
        choices=BACKENDS,
        default="auto",
        help="what reads each file: auto (default) is our box reader alone for MP4/MOV and "
        "MediaInfo for anything else; mediainfo, ffprobe or both run the named backend(s) "
        "too (both lists their disagreements)",
    )
    group.add_argument(
        "--probe-timeout",
        type=positive,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds a backend may parse one file before it is killed and the file is an "
        f"error of kind timeout (default {DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "--probe-memory-mib",
        type=whole,
        default=DEFAULT_MEMORY_MIB,
        metavar="MIB",
        help=f"address space a backend may use on one file; past it the file is an error of "
        f"kind resource_limit (default {DEFAULT_MEMORY_MIB})",
    )


def whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def add_remote_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("URLs")
    group.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="a URL on a private, loopback or link-local address is a warning, "
        "not a reject (the API cannot fetch it; for tests and local demos)",
    )
    group.add_argument(
        "--per-host",
        type=int,
        default=DEFAULT_PER_HOST,
        metavar="N",
        help="connections open to one host at once, shared by a batch's URLs "
        f"(default {DEFAULT_PER_HOST})",
    )
    group.add_argument(
        "--connect-timeout",
        type=positive,
        default=10.0,
        metavar="S",
        help="seconds to wait for a connection (default 10)",
    )
    group.add_argument(
        "--read-timeout",
        type=positive,
        default=30.0,
        metavar="S",
        help="seconds to wait for data before giving up (default 30)",
    )
    group.add_argument(
        "--deadline",
        type=positive,
        default=DEFAULT_DEADLINE_S,
        metavar="S",
        help="seconds one URL may take in all (connecting, redirects, every Range request and "
        f"byte); past it the source is an error of kind timeout (default {DEFAULT_DEADLINE_S:g})",
    )
    group.add_argument(
        "--max-prefix-mib",
        type=positive,
        default=32.0,
        metavar="MIB",
        help="from a server without Range support, read at most this much (default 32)",
    )


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535: {text!r}")
    return value


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number above 0: {text!r}")
    return value


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--profile",
        choices=PROFILES,
        help="a shipped policy profile (default cometapi)",
    )
    group.add_argument(
        "--policy",
        metavar="FILE",
        help="a house policy JSON file (without either flag: $PREFLIGHT_POLICY, else the "
        "nearest .preflight.json or [tool.preflight] of a pyproject.toml, from here up, if "
        "you or root own it and no one else may write it)",
    )


def add_kling_options(parser: argparse.ArgumentParser, *, with_account: bool) -> None:
    """How a Kling video_id is looked up before anything billed (init; check's kling: sources)."""
    group = parser.add_argument_group("Kling videos (video_id + task_id, or kling:TASK/VIDEO)")
    group.add_argument(
        "--task-action",
        choices=TASK_ACTIONS,
        metavar="NAME",
        help="the route that made the task (" + ", ".join(TASK_ACTIONS) + "): one query "
        "instead of trying each in turn",
    )
    group.add_argument(
        "--no-probe-video-id",
        action="store_true",
        help="judge a Kling video by its task's facts only; do not probe its URL",
    )
    if with_account:
        group.add_argument(
            "--api-base",
            metavar="URL",
            help="API base URL (default $PREFLIGHT_API_BASE or https://api.cometapi.com)",
        )
        group.add_argument(
            "--api-key-file",
            metavar="FILE",
            help="read the key from FILE instead of $COMETAPI_KEY (only kling: sources need one)",
        )
