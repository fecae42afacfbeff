"""Shared test fixtures: where the fixtures, the corpus and the real `preflight` script are.

Tests that need ffmpeg find it or fail with a reason; they never pass silently without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"


def preflight_script() -> str:
    """The installed console script next to this interpreter (the one CI's venv put there)."""
    beside = Path(sys.executable).with_name("preflight")
    found = str(beside) if beside.exists() else shutil.which("preflight")
    if not found:
        pytest.fail("the preflight console script is not installed: run `make test`")
    return found


def run_cli(
    *args: str,
    stdin: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real console script in a subprocess; `env` is its whole environment (default: ours,
    without NO_COLOR)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [preflight_script(), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


def init_env(api_base: str, key: str, tmp_path: Path) -> dict[str, str]:
    """Our environment for `preflight init` against a stand-in at `api_base`: its key, and a ledger
    of the test's own (no COMETAPI_KEY or NO_COLOR of ours leaks in)."""
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    return {
        **base,
        "COMETAPI_KEY": key,
        "PREFLIGHT_API_BASE": api_base,
        "PREFLIGHT_LEDGER": str(tmp_path / "ledger.sqlite3"),
    }


def run_json(*args: str) -> tuple[int, Any]:
    done = run_cli(*args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def make_video(ffmpeg: str, out: Path, lavfi: str, *args: str) -> Path:
    """Encode a lavfi source with x264 (ultrafast) into `out`, with extra output options."""
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", lavfi, "-c:v", "libx264"]
    subprocess.run([*cmd, "-preset", "ultrafast", *args, str(out)], check=True)
    return out


# Nothing listens on the discard port: a test that forgets to point `init` at its own stand-in
# API fails closed on loopback instead of reaching (and paying) the real one.
CLOSED_API_BASE = "http://127.0.0.1:9"


@pytest.fixture(scope="session", autouse=True)
def _private_ledger(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The CLI caches probes in the ledger: never in the user's own, and never across test runs.
    os.environ["PREFLIGHT_LEDGER"] = str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite3")
    os.environ["PREFLIGHT_API_BASE"] = CLOSED_API_BASE


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        pytest.fail("ffmpeg is not installed: `make test` installs it (apt-get install ffmpeg)")
    return found


@pytest.fixture(scope="session")
def manifest() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
    return rows


# A throwaway PostgreSQL cluster for the shared-ledger tests: Debian's server binaries (dev.sh
# installs `postgresql` when missing), run as `nobody` when we are root (CI), since initdb and
# the server refuse to run as root. Password auth over 127.0.0.1, so tests see a real password.
PG_USER = "preflight"
PG_PASSWORD = "pg-SECRET-51c0de"


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if not found:
        pytest.fail(f"{name} is not installed: `bash dev.sh test` installs Debian's postgresql")
    return found


class PgCluster:
    """A throwaway cluster in a private folder; stop() and start() again keep its port and data
    (the billing tests stop the server mid-request)."""

    def __init__(self) -> None:
        import socket
        import tempfile

        self._as_nobody = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        self.home = Path(tempfile.mkdtemp(prefix="preflight-pg-"))
        (self.home / "pw").write_text(PG_PASSWORD + "\n")
        if self._as_nobody:
            import pwd

            nobody = pwd.getpwnam("nobody")
            for path in (self.home, self.home / "pw"):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.data = self.home / "data"
        subprocess.run(
            [*self._as_nobody, _pg_bin("initdb"), "-D", str(self.data), "-U", PG_USER, "-A",
             "scram-sha-256", f"--pwfile={self.home / 'pw'}", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.dsn = f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        status = [*self._as_nobody, _pg_bin("pg_ctl"), "-D", str(self.data), "status"]
        if subprocess.run(status, capture_output=True, timeout=30, check=False).returncode == 0:
            return  # already running
        options = f"-k {self.home} -h 127.0.0.1 -p {self.port} -c fsync=off -c max_connections=200"
        started = subprocess.run(
            [*self._as_nobody, _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
             str(self.home / "log"), "-w", "-t", "60", "start"],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        if started.returncode != 0:
            log = (self.home / "log").read_text() if (self.home / "log").exists() else ""
            pytest.fail(f"PostgreSQL did not start: {started.stderr}{log}")

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            [*self._as_nobody, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t",
             "60", "stop"],
            capture_output=True, timeout=90, check=False,
        )  # fmt: skip

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's cluster, for the tests that stop and start it."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def postgres(pg_cluster: PgCluster) -> str:
    """A running cluster's DSN (to its `postgres` database, as the superuser)."""
    return pg_cluster.dsn


@pytest.fixture
def pg_ledger(postgres: str) -> str:
    """The DSN of a fresh, empty database on the test cluster: one shared ledger per test."""
    import secrets

    import psycopg

    name = f"ledger_{secrets.token_hex(6)}"
    with psycopg.connect(postgres, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"
