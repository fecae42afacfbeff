"""A session the API opened (and billed) is never lost: the real CLI, the stand-in API and a real
disk that fills up while the request is out (a small tmpfs; CI runs as root).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight.ledger import Ledger
from preflight.session import source_key
from preflight.session.credentials import ApiKey
from preflight.testing import ROUTE, Fault, Sandbox

from .conftest import run_cli

KEY = "sk-test-billing-2b7e"
IDS = ("--video-id", "784912347344945152", "--task-id", "7849")
BODY = {"video_id": "784912347344945152", "task_id": "7849"}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: big enough for a ledger, small enough to fill in a moment."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        check=True,
        timeout=30,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True, timeout=30)


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
def env(api: Sandbox, disk: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    return {
        **base,
        "COMETAPI_KEY": KEY,
        "PREFLIGHT_API_BASE": api.base_url,
        "PREFLIGHT_LEDGER": str(disk / "ledger.sqlite3"),
    }


def fill(folder: Path) -> None:
    """Write until the file system refuses a single byte more."""
    for name, chunk in (("filler", 64 * 1024), ("filler-bytes", 1)):
        with open(folder / name, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


def free(folder: Path) -> None:
    for name in ("filler", "filler-bytes"):
        (folder / name).unlink(missing_ok=True)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def run_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    done = run(env, *args, "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def posts(api: Sandbox) -> int:
    return sum(1 for r in api.requests if r.path.startswith(ROUTE))


def test_a_disk_that_fills_while_the_api_answers_loses_no_session(
    env: dict[str, str], api: Sandbox, disk: Path
) -> None:
    room_left: list[int] = []

    def fill_and_measure() -> None:
        fill(disk)
        room_left.append(os.statvfs(disk).f_bavail)

    api.faults.append(Fault(on_answer=fill_and_measure))
    code, out, err = run_json(env, "init", *IDS)
    assert room_left == [0]  # the answer arrived to a full disk
    assert code == 0, err
    assert out["session_id"] in api.sessions and out["reused"] is False
    free(disk)
    code, again, err = run_json(env, "init", *IDS)
    assert code == 0, err
    assert again["reused"] is True and again["session_id"] == out["session_id"]
    assert posts(api) == 1  # no second, billed session
    code, listed, _ = run_json(env, "sessions")
    assert [s["session_id"] for s in listed["sessions"]] == [out["session_id"]]


def _truncate_wal_then_fill(ledger: Path, disk: Path) -> None:
    # Another process checkpoints the WAL away (giving back the room init reserved), then the
    # disk fills: now nothing can be written, and the session must still not be lost.
    conn = sqlite3.connect(ledger, timeout=10)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        conn.close()
    fill(disk)


def test_a_session_the_ledger_cannot_record_is_printed_and_exits_4(
    env: dict[str, str], api: Sandbox, disk: Path
) -> None:
    ledger = Path(env["PREFLIGHT_LEDGER"])
    api.faults.append(Fault(on_answer=lambda: _truncate_wal_then_fill(ledger, disk)))
    # The recording is retried for PREFLIGHT_LEDGER_RETRY_S (the disk may be freed meanwhile).
    code, out, err = run_json({**env, "PREFLIGHT_LEDGER_RETRY_S": "1"}, "init", *IDS)
    [opened] = api.sessions
    assert code == 4, err
    assert out["session_id"] == opened and out["error"]["kind"] == "unrecorded"
    assert out["error"]["session_id"] == opened
    assert len(err.strip().splitlines()) == 1 and opened in err
    # A full disk is what the hint says, with the command that records the session after.
    assert "free space" in err and f"preflight sessions import {opened} --source" in err
    free(disk)
    # Nothing could be written: the attempt is still 'sending', i.e. unknown, never 'failed'.
    with Ledger(ledger) as book:
        assert [a.state for a in book.attempts()] == ["sending"]
        assert book.sessions() == []


def test_a_session_is_recorded_once_the_full_disk_has_room_again(
    env: dict[str, str], api: Sandbox, disk: Path
) -> None:
    # The billed session waits in memory and its recording is retried: freed a moment later,
    # the disk takes it (before: exit 4 `unrecorded` at the first failure).
    ledger = Path(env["PREFLIGHT_LEDGER"])

    def fill_then_free_soon() -> None:
        _truncate_wal_then_fill(ledger, disk)
        threading.Timer(1.0, free, args=(disk,)).start()

    api.faults.append(Fault(on_answer=fill_then_free_soon))
    code, out, err = run_json({**env, "PREFLIGHT_LEDGER_RETRY_S": "30"}, "init", *IDS)
    [opened] = api.sessions
    assert code == 0, err
    assert out["session_id"] == opened and out["reused"] is False
    with Ledger(ledger) as book:
        assert [(a.state, a.session_id) for a in book.attempts()] == [("ok", opened)]
        assert [row.session_id for row in book.sessions()] == [opened]


def test_a_disk_full_before_sending_sends_nothing(
    env: dict[str, str], api: Sandbox, disk: Path
) -> None:
    Ledger(env["PREFLIGHT_LEDGER"]).close()
    fill(disk)
    done = run(env, "init", *IDS)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert posts(api) == 0


def test_a_session_only_on_its_attempt_row_is_reused_and_listed(
    api: Sandbox, tmp_path: Path
) -> None:
    # What a preflight that recorded attempt and session separately left after a full disk.
    path = tmp_path / "old.sqlite3"
    key = source_key(BODY)
    with Ledger(path) as book:
        attempt = book.begin_attempt(
            source=key,
            source_key=key,
            attempt_no=1,
            request_body=BODY,
            facts=None,
            verdict="unchecked",
            api_base=api.base_url,
            key_fingerprint=ApiKey(KEY).fingerprint(),  # reuse is per account
        )
        book.finish_attempt(
            attempt, state="ok", http_status=200, code=0, session_id="900000000000000001"
        )
    env = {
        **{k: v for k, v in os.environ.items() if k != "NO_COLOR"},
        "COMETAPI_KEY": KEY,
        "PREFLIGHT_API_BASE": api.base_url,
        "PREFLIGHT_LEDGER": str(path),
    }
    code, out, err = run_json(env, "init", *IDS)
    assert code == 0, err
    assert out["reused"] is True and out["session_id"] == "900000000000000001"
    assert posts(api) == 0
    code, listed, _ = run_json(env, "sessions", "--active")
    assert [s["session_id"] for s in listed["sessions"]] == ["900000000000000001"]
    shown = run(env, "sessions", "show", "900000000000000001")
    assert shown.returncode == 0 and json.loads(shown.stdout)["source_key"] == key
