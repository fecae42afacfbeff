"""`preflight sandbox`: the stand-in API (sandbox.py) started detached from the shell, so that
`eval "$(preflight sandbox)"` returns with the server still running.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time


def start_in_background(key: str, port: int, *, wait_s: float = 30.0) -> list[str]:
    """`preflight sandbox`: serve in a detached process and return the shell lines to `eval`.

    The server is `python -m preflight.testing.sandbox` in its own session (a Ctrl-C in the shell
    does not reach it), holding none of our output streams, so `eval "$(preflight sandbox)"`
    returns at once. The lines `export` the API base and key, and PREFLIGHT_SANDBOX_PID:
    `kill "$PREFLIGHT_SANDBOX_PID"` stops it. OSError (with the server's own words) if it could
    not start (a port taken) within `wait_s`.
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "preflight.testing.sandbox", "--port", str(port), "--key", key],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None and child.stderr is not None
    out = b""
    deadline = time.monotonic() + wait_s
    # Raw reads under select (a buffered readline would hide the second line in its buffer).
    while out.count(b"\n") < 2 and time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(child.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            break
        out += chunk
    lines = out.decode().splitlines()[:2]
    if len(lines) < 2:
        if child.poll() is None:
            child.kill()
        said = child.stderr.read().decode(errors="replace").strip().splitlines()
        child.wait(timeout=10)
        raise OSError(said[-1].split("error: ", 1)[-1] if said else "the server did not start")
    child.stdout.close()  # it prints nothing more; our end closes with us either way
    child.stderr.close()
    return [f"export {line}" for line in lines] + [f"export PREFLIGHT_SANDBOX_PID={child.pid}"]
