"""`preflight sessions`: list the ledger's sessions or show one, list the attempts that may have
billed (--attempts), and record by hand a session the ledger missed (import).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..status import ExitCode

if TYPE_CHECKING:
    from ..ledger import Ledger


def run_sessions(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..ledger import Ledger, default_path
    from ..report.sessions import print_attempts, print_sessions

    with Ledger(args.ledger or default_path()) as ledger:
        if args.attempts and not args.action:
            print_attempts(ledger.risky_attempts(), sys.stdout, as_json=args.json)
            return ExitCode.OK
        if not args.action:
            rows = ledger.sessions(active_only=args.active)
            print_sessions(rows, sys.stdout, as_json=args.json, now=datetime.now(timezone.utc))
            return ExitCode.OK
        if len(args.action) == 2 and args.action[0] == "import":
            return _import_session(ledger, args)
        if len(args.action) != 2 or args.action[0] != "show":
            raise UsageError(
                "usage: preflight sessions [--active] [--attempts] [--json] | preflight sessions"
                " show SESSION_ID | preflight sessions import SESSION_ID --source SOURCE"
            )
        row = ledger.session(args.action[1])
        if row is None:
            raise UsageError(f"no session {args.action[1]} in {ledger.path}")
        print(json.dumps(row.to_dict(), indent=2))
        return ExitCode.OK


def _import_session(ledger: Ledger, args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..ledger.manual import import_session
    from ..session.credentials import load_api_key, resolve_api_base
    from ..session.init_selection import source_for

    if not args.source:
        raise UsageError("sessions import needs --source SOURCE, as init printed it")
    expires = None
    if args.expires:
        try:
            expires = datetime.fromisoformat(args.expires)
        except ValueError:
            raise UsageError(
                f"--expires {args.expires!r} is not an ISO 8601 time, e.g. 2026-12-08T10:00:00Z"
            ) from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
    source, key = source_for(args.source)
    row = import_session(
        ledger,
        args.action[1],
        source=source,
        source_key=key,
        api_base=resolve_api_base(args.api_base),
        key_fingerprint=load_api_key(args.api_key_file).fingerprint(),
        expires_at=expires,
    )
    if args.json:
        print(json.dumps(row.to_dict(), indent=2))
    else:
        print(f"IMPORTED {row.session_id} (expires {row.expires_at}) {row.source}")
    return ExitCode.OK
