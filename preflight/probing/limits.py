"""The bounds every parse of untrusted bytes by libmediainfo or ffprobe runs under.

Importing this costs nothing, so `check` on cached or MP4/MOV files never loads the worker pool.
"""

from __future__ import annotations

from dataclasses import dataclass

# A real file parses in milliseconds: a MediaInfo worker that read every fixture and corpus file
# peaked at 54 MiB of address space (35 MiB resident), ffprobe needs ~350 MiB to map its
# libraries. A hostile index grows or spins without end. These leave a wide margin for real
# files and stop hostile ones long before the machine notices.
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MIB = 1024


@dataclass(frozen=True)
class ProbeLimits:
    """How long, and with how much address space, one backend may parse one file."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mib: int = DEFAULT_MEMORY_MIB

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024
