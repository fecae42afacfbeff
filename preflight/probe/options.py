"""Options of a remote probe (timeouts, prefix cap, retries), kept apart from the HTTP code.

Importing this costs nothing, so `check` on local files never loads requests.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_PREFIX = 32 * 1024 * 1024


@dataclass(frozen=True)
class RemoteOptions:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_prefix_bytes: int = DEFAULT_MAX_PREFIX  # read at most this much from a server without Range
    retries: int = 2  # for 5xx answers and refused connections, with exponential back-off

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)
