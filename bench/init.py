"""Benchmark: what the claim's fencing and the ledger's bounds cost per `preflight init`.

Runs `preflight init --json --video-id …` as a user would, against the loopback stand-in API
(`python -m preflight.testing.sandbox`, answering at once), on a SQLite ledger and on a
PostgreSQL one, for two installs: "after" (the `preflight` beside this interpreter) and "before"
(the one beside --before PYTHON, e.g. a venv of the code before the fencing). Runs alternate
between the two, so both see the same machine load. Each run opens a session on a new source
(the path that claims, fences and records); then as many runs reuse one source. Prints each
median wall time and the ratio after/before. Imports nothing from preflight itself. Usage:
    python bench/init.py --before /tmp/old/.venv/bin/python [--runs N] [--pg DSN]
Without --pg, a throwaway PostgreSQL cluster is started with Debian's initdb and pg_ctl.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TIMEOUT_S = 60
KEY = "bench-init-key"


def script(python: str) -> str:
    found = Path(python).with_name("preflight")
    if not found.exists():
        raise SystemExit(f"no preflight console script beside {python}")
    return str(found)


@contextlib.contextmanager
def stand_in(python: str) -> Iterator[str]:
    """The sandbox in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [python, "-m", "preflight.testing.sandbox", "--key", KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("PREFLIGHT_API_BASE="):
            raise SystemExit(f"the sandbox did not start: {line!r}")
        yield line.split("=", 1)[1].strip("'")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if not found:
        raise SystemExit(f"{name} not found: install Debian's postgresql or pass --pg DSN")
    return found


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth on loopback); yields a superuser DSN."""
    as_nobody = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    if as_nobody:
        import pwd

        os.chown(home, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = home / "data"
    subprocess.run(
        [*as_nobody, _pg_bin("initdb"), "-D", str(data), "-U", "bench", "-A", "trust",
         "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    options = f"-k {home} -h 127.0.0.1 -p {port} -c fsync=off"
    pg_ctl = _pg_bin("pg_ctl")
    subprocess.run(
        [*as_nobody, pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "log"), "-w",
         "start"],
        check=True, capture_output=True, timeout=90,
    )  # fmt: skip
    try:
        yield f"postgresql://bench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_nobody, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=90, check=False,
        )  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def new_database(python: str, dsn: str, name: str) -> str:
    """A fresh database for one install (an older preflight refuses a newer schema)."""
    code = (
        "import sys, psycopg\n"
        "with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=10) as c:\n"
        "    c.execute('CREATE DATABASE ' + sys.argv[2])\n"
    )
    subprocess.run([python, "-c", code, dsn, name], check=True, timeout=TIMEOUT_S)
    return dsn.rsplit("/", 1)[0] + f"/{name}"


def init_ms(preflight: str, env: dict[str, str], video_id: str) -> float:
    argv = [preflight, "init", "--json", "--video-id", video_id, "--task-id", "9"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, timeout=TIMEOUT_S, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{preflight} init failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="python of the install to compare with")
    parser.add_argument("--runs", type=int, default=15, help="runs of each (default 15)")
    parser.add_argument("--pg", help="a PostgreSQL superuser DSN (default: a throwaway cluster)")
    args = parser.parse_args()
    installs = {"before": args.before, "after": sys.executable}
    work = Path(tempfile.mkdtemp(prefix="bench-init-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFLIGHT_", "COMETAPI"))}
    try:
        with stand_in(sys.executable) as api, contextlib.ExitStack() as stack:
            dsn = args.pg or stack.enter_context(cluster())
            tag = f"b{os.getpid()}"
            ledgers = {("sqlite", name): str(work / f"{name}.sqlite3") for name in installs} | {
                ("postgresql", name): new_database(python, dsn, f"{tag}_{name}")
                for name, python in installs.items()
            }
            times: dict[tuple[str, str, str], list[float]] = {
                (kind, name, path): [] for kind, name in ledgers for path in ("open", "reuse")
            }
            for run in range(args.runs):
                for (kind, name), ledger in ledgers.items():
                    env = {
                        **base,
                        "HOME": str(work),
                        "COMETAPI_KEY": KEY,
                        "PREFLIGHT_API_BASE": api,
                        "PREFLIGHT_LEDGER": ledger,
                    }
                    preflight = script(installs[name])
                    # A new source each run: claim, attempt row, fence checks, POST, record.
                    times[(kind, name, "open")].append(
                        init_ms(preflight, env, f"7849123473449{run:05d}")
                    )
                    times[(kind, name, "reuse")].append(
                        init_ms(preflight, env, "784912347344999999")
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"preflight init, median of {args.runs} runs (ms); after = {sys.executable}")
    print(f"{'ledger':<11} {'path':<6} {'before':>8} {'after':>8} {'after/before':>13}")
    for kind in ("sqlite", "postgresql"):
        for path in ("open", "reuse"):
            before = statistics.median(times[(kind, "before", path)])
            after = statistics.median(times[(kind, "after", path)])
            print(f"{kind:<11} {path:<6} {before:8.1f} {after:8.1f} {after / before:13.2f}")


if __name__ == "__main__":
    main()
