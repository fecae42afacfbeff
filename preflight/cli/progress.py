"""A one-line progress bar on stderr for batches: counts by verdict, rate and time left.

Shown only when stderr is a terminal and not --quiet; it never writes into piped output.
"""

from __future__ import annotations

import time
from typing import IO

_REDRAW_S = 0.1  # at most ten redraws a second: a terminal is slower than the probes


class Progress:
    def __init__(self, total: int, stream: IO[str], *, enabled: bool) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and total > 1
        self.counts = {"pass": 0, "reject": 0, "error": 0}
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, verdict: str) -> None:
        self.counts[verdict] = self.counts.get(verdict, 0) + 1
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= _REDRAW_S or self.done == self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(now) + "\033[K")
            self.stream.flush()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        c = self.counts
        return (
            f"[{bar[:width]}] {self.done}/{self.total}  pass {c['pass']}  "
            f"reject {c['reject']}  error {c['error']}  {rate:.1f}/s  "
            f"ETA {int(left // 60)}:{int(left % 60):02d}"
        )

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\r\033[K")  # leave the terminal as the report printed it
            self.stream.flush()
