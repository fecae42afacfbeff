"""Secrets never leave: a bad key is refused before anything is recorded or sent, a key the server
echoes back in any field or encoding is redacted everywhere, and URL userinfo is never kept.

The real CLI against the loopback stand-in API; the ledger's raw bytes (WAL included) are grepped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.ledger import Ledger
from preflight.sandbox import ROUTE, Sandbox
from preflight.serve import MediaServer

from .conftest import FIXTURES, preflight_script

KEY = "sk-test/SECRET+7f3a9c1e"  # a '/' and a '+': JSON and URL encodings both change them
IDS = ("--video-id", "784912347344945152", "--task-id", "7849")


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer(FIXTURES / "media") as server:
        yield server


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
def env(api: Sandbox, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    return {
        **base,
        "COMETAPI_KEY": KEY,
        "PREFLIGHT_API_BASE": api.base_url,
        "PREFLIGHT_LEDGER": str(tmp_path / "ledger.sqlite3"),
    }


def init(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [preflight_script(), "init", "--allow-private-urls", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def ledger_bytes(env: dict[str, str]) -> bytes:
    """The ledger file and its -wal and -shm companions, as raw bytes."""
    ledger = Path(env["PREFLIGHT_LEDGER"])
    return b"".join(p.read_bytes() for p in sorted(ledger.parent.glob(ledger.name + "*")))


def attempts(env: dict[str, str]) -> list[object]:
    path = Path(env["PREFLIGHT_LEDGER"])
    if not path.exists():
        return []
    with Ledger(path) as ledger:
        return list(ledger.attempts())


def posts(api: Sandbox) -> int:
    return sum(1 for r in api.requests if r.path.startswith(ROUTE))


# D.9 --------------------------------------------------------------------------------------------

BAD_KEYS = {
    "crlf": "sk-good\r\nX-Injected: 1",
    "lf": "sk-first\nsk-second",
    "tab": "sk-left\tright",
    "non_latin1": "sk-ключ-1234",
    "latin1_only": "sk-caf\u00e9-1234",
    "control": "sk-bell\x07-1234",
}


@pytest.mark.parametrize("name", sorted(BAD_KEYS))
def test_a_bad_key_in_the_environment_is_a_usage_error_before_any_row(
    env: dict[str, str], api: Sandbox, name: str
) -> None:
    bad = BAD_KEYS[name]
    done = init({**env, "COMETAPI_KEY": bad}, *IDS)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "COMETAPI_KEY" in done.stderr
    for part in bad.removeprefix("sk-").split():
        assert part not in done.stderr  # no piece of the key
    assert attempts(env) == [] and posts(api) == 0


def test_a_key_file_with_two_lines_is_refused_the_same_way(
    env: dict[str, str], api: Sandbox, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-first-line\nsk-second-line\n")
    key_file.chmod(0o600)
    nokey = {k: v for k, v in env.items() if k != "COMETAPI_KEY"}
    done = init(nokey, *IDS, "--api-key-file", str(key_file))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "line break" in done.stderr
    assert "first-line" not in done.stderr and "second-line" not in done.stderr
    assert attempts(env) == [] and posts(api) == 0


def test_the_library_refuses_a_bad_key_too() -> None:
    from preflight.client import ApiKey
    from preflight.errors import UsageError

    with pytest.raises(UsageError) as caught:
        ApiKey("sk-abc\r\ndef")
    assert "abc" not in str(caught.value) and "def" not in str(caught.value)
    assert ApiKey(KEY).header() == f"Bearer {KEY}"
