"""Run by path between fix and each ffmpeg it starts: bound the process, then become ffmpeg.

What preexec_fn would do, which is unsafe in a threaded parent (fix batches are threads): arm
the parent-death signal (SIGKILL when preflight dies, SIGKILL included), set the address-space
and CPU-time limits and no core dumps, then execv. Imports only the standard library.

    python -S -I launcher.py PARENT_PID MEMORY_BYTES CPU_SECONDS -- ffmpeg ARGS...
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_GONE = 125  # the parent died before the signal was armed: nobody wants the output
CANNOT_START = 126  # the bounds could not be set, or the program could not be run


def main(argv: list[str]) -> int:
    parent, memory, cpu = int(argv[1]), int(argv[2]), int(argv[3])
    command = argv[5:]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (AttributeError, OSError) as exc:
        sys.stderr.write(f"cannot arm the parent-death signal: {exc}\n")
        return CANNOT_START
    # Armed only now: had the parent died since the fork, we were reparented and no signal comes.
    if os.getppid() != parent:
        return PARENT_GONE
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        # The soft limit sends SIGXCPU; the hard one, a little later, SIGKILL.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        os.execv(command[0], command)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"cannot run {command[0]}: {exc}\n")
    return CANNOT_START


if __name__ == "__main__":
    sys.exit(main(sys.argv))
