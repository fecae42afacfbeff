"""What the CLI says on stderr about the run itself, escaped like every report: which policy it
applies (once, and why a found one is not used), and watch's warnings.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..report.printable import shown

if TYPE_CHECKING:
    import argparse

    from ..policy import PolicyChoice


def policy_choice(args: argparse.Namespace) -> PolicyChoice:
    """The policy of this run, chosen once (init asks for it twice): a policy found on disk is
    named on stderr, and one found but not trusted is refused there, each on one line."""
    choice: PolicyChoice | None = getattr(args, "policy_choice", None)
    if choice is None:
        from ..policy import choose_policy

        choice = choose_policy(args.policy, profile=args.profile)
        if choice.refused is not None:
            print(shown(f"preflight: warning: {choice.refused}"), file=sys.stderr)
        if choice.discovered is not None:
            print(shown(f"preflight: policy from {choice.discovered}"), file=sys.stderr)
        args.policy_choice = choice
    return choice


def escaped_warnings() -> None:
    """watch's warnings (a file not moved, not fixed) name files: written as logging's last
    resort writes them (the message, on stderr), but through shown(), so a name's newline or
    ESC cannot forge a line or drive the terminal."""
    import logging  # here: a check of one file loads no logging

    class Shown(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return shown(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Shown("%(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("preflight")
    logger.addHandler(handler)
    logger.propagate = False
