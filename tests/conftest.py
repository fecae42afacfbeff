"""Shared test fixtures: where the fixtures, the corpus and the real `preflight` script are.

Tests that need ffmpeg find it or fail with a reason; they never pass silently without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [preflight_script(), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env=env,
        check=False,
    )


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
