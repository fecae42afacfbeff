"""From parsed options to the library's values: CheckOptions and its probe limits, the probe cache
a command opens (and closes), and the lookup of kling: sources (the only ones that need the key).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..cache import ProbeCache
    from ..pipeline import CheckOptions
    from ..probing.limits import ProbeLimits
    from ..session.task_judge import KlingCheck


def check_options(args: argparse.Namespace) -> CheckOptions:
    from ..pipeline import CheckOptions
    from ..probing.options import RemoteOptions

    remote = RemoteOptions(
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        deadline_s=args.deadline,
        max_prefix_bytes=int(args.max_prefix_mib * 1024 * 1024),
        per_host=args.per_host,
    )
    return CheckOptions(
        backend=args.probe,
        remote=remote,
        limits=probe_limits(args),
        allow_private_urls=args.allow_private_urls,
    )


def kling_lookup(args: argparse.Namespace) -> KlingCheck:
    """What looks up kling:TASK/VIDEO sources: only they need the API key."""
    from ..session.credentials import load_api_key, resolve_api_base
    from ..session.task_judge import KlingCheck, MemoryActions
    from ..session.task_query import TaskClient

    client = TaskClient(resolve_api_base(args.api_base), load_api_key(args.api_key_file))
    return KlingCheck(client, args.task_action, MemoryActions(), not args.no_probe_video_id)


def probe_limits(args: argparse.Namespace) -> ProbeLimits:
    from ..probing.limits import ProbeLimits

    return ProbeLimits(timeout_s=args.probe_timeout, memory_mib=args.probe_memory_mib)


def open_cache(ledger: str | None) -> ProbeCache | None:
    from ..cache import ProbeCache
    from ..errors import LedgerError
    from ..ledger import default_path

    try:
        return ProbeCache(ledger or default_path())
    except LedgerError as exc:
        # A cache is an optimisation: without one every source is probed, which is still right.
        print(f"preflight: warning: no probe cache ({exc})", file=sys.stderr)
        return None
