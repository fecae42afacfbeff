"""Which signal ended a command that stops gracefully on it (`watch`), for the exit code.

`watch` takes Ctrl-C as its way to stop and returns normally, but the exit-code table (README)
says 130 for an interrupt and 143 for SIGTERM, and a service manager or a script relies on it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ..status import ExitCode


@contextmanager
def noting_signals(seen: list[int]) -> Iterator[None]:
    """Append each SIGINT/SIGTERM to `seen`, then let the handler in place handle it as before."""
    previous = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}

    def note(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        handler = previous[signal.Signals(signum)]
        if callable(handler):
            handler(signum, frame)

    for signum, handler in previous.items():
        if callable(handler):  # a handler Python runs (not SIG_IGN): keep it, noted
            signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def exit_code_after(seen: list[int], code: int) -> int:
    """`code`, unless a signal ended the command: then 143 (SIGTERM) or 130 (Ctrl-C)."""
    if signal.SIGTERM in seen:
        return ExitCode.TERMINATED
    return ExitCode.INTERRUPTED if seen else code
