"""What a session record gives Kling's next calls (issue 14): the server's reading, the request id,
the create-task duration bucket and the key's fingerprint, through `init` and `sessions show`;
the schema migration of old ledgers (SQLite and PostgreSQL); and HTTP 524 retried like 504.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from preflight.facts import Facts
from preflight.ledger import Ledger
from preflight.ledger import pg as pg_store
from preflight.ledger import store as sqlite_store
from preflight.ledger.tables import SCHEMA_VERSION
from preflight.session import ServerFacts
from preflight.session.credentials import ApiKey
from preflight.session.result import duration_bucket
from preflight.testing import ROUTE, Fault, Sandbox
from preflight.testing.media_server import MediaServer

from .conftest import make_video, run_cli

KEY = "sk-test-SECRET-7f3a9c1e"
# Every field the record of a session must give (issue 14), besides its id and times.
NEXT_CALL_FIELDS = (
    "fps",
    "original_duration",
    "total_frame",
    "width",
    "height",
    "normalized_video",
    "final_unit_deduction",
    "request_id",
    "duration_bucket",
    "key_fingerprint",
)


@pytest.fixture(scope="module")
def media(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    # The two ends of the policy's ranges: 2.0 s is the shortest "5", 10.5 s the longest "10".
    folder = tmp_path_factory.mktemp("record-media")
    for name, seconds in (("short.mp4", "2"), ("long.mp4", "10.5")):
        make_video(ffmpeg, folder / name, f"color=c=blue:s=1280x720:r=30:d={seconds}")
    with MediaServer(folder) as server:
        yield server


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


def environment(api: Sandbox, ledger: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    return {
        **base,
        "COMETAPI_KEY": KEY,
        "PREFLIGHT_API_BASE": api.base_url,
        "PREFLIGHT_LEDGER": ledger,
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def init_json(env: dict[str, str], url: str, *args: str) -> dict[str, Any]:
    done = cli(env, "init", "--allow-private-urls", "--json", "--video-url", url, *args)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def show_json(env: dict[str, str], session_id: str) -> dict[str, Any]:
    done = cli(env, "sessions", "show", session_id, "--json")
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


@pytest.mark.parametrize(("name", "bucket"), [("short.mp4", "5"), ("long.mp4", "10")])
def test_init_records_what_the_next_calls_need(
    api: Sandbox, media: MediaServer, tmp_path: Path, name: str, bucket: str
) -> None:
    env = environment(api, str(tmp_path / "ledger.sqlite3"))
    out = init_json(env, media.url(name))
    answered = api.sessions[out["session_id"]]
    assert out["duration_bucket"] == bucket
    assert out["key_fingerprint"] == ApiKey(KEY).fingerprint()
    # New keys come after the ones scripts already read, in their old order.
    assert list(out)[-3:] == ["duration_bucket", "key_fingerprint", "contended"]
    assert list(out)[:4] == ["source", "verdict", "session_id", "reused"]
    shown = show_json(env, out["session_id"])
    for field in NEXT_CALL_FIELDS:
        assert shown[field] is not None, field
    data = answered["data"]
    assert shown["request_id"] == answered["request_id"] == out["request_id"]
    assert shown["normalized_video"] == data["normalized_video"]
    assert shown["final_unit_deduction"] == data["final_unit_deduction"]
    assert (shown["width"], shown["height"], shown["fps"]) == (1280, 720, 30)
    assert shown["total_frame"] == data["total_frame"]
    assert shown["original_duration"] == data["original_duration"]
    assert (shown["duration_bucket"], shown["key_fingerprint"]) == (
        bucket,
        out["key_fingerprint"],
    )
    # A reused session gives the same record, without a second call.
    again = init_json(env, media.url(name))
    assert again["reused"] is True and again["duration_bucket"] == bucket
    assert again["key_fingerprint"] == out["key_fingerprint"]
    human = cli(env, "init", "--allow-private-urls", "--video-url", media.url(name))
    assert f"next calls: duration {bucket}, key {out['key_fingerprint']}" in human.stdout
    assert sum(1 for r in api.requests if r.path.startswith(ROUTE)) == 1


def test_the_key_is_in_no_ledger_byte(api: Sandbox, media: MediaServer, tmp_path: Path) -> None:
    ledger = tmp_path / "ledgers" / "ledger.sqlite3"
    env = environment(api, str(ledger))
    out = init_json(env, media.url("short.mp4"))
    init_json(env, media.url("long.mp4"))
    assert out["key_fingerprint"] not in KEY and KEY not in json.dumps(out)
    files = list(ledger.parent.iterdir())
    assert ledger in files
    for each in files:  # the database, its WAL and shared-memory files
        data = each.read_bytes()
        assert KEY.encode() not in data and b"SECRET-7f3a9c1e" not in data, each


def test_the_fingerprint_tells_keys_apart_and_hides_them() -> None:
    first = ApiKey(KEY).fingerprint()
    assert first == ApiKey(KEY).fingerprint()
    assert first != ApiKey(KEY + "x").fingerprint() != ApiKey("sk-other").fingerprint()
    assert len(first) == 12 and int(first, 16) >= 0
    # Salted: not the plain sha256 of the key that another tool might show beside it.
    import hashlib

    assert not hashlib.sha256(KEY.encode()).hexdigest().startswith(first)


@pytest.mark.parametrize(
    ("ours", "server_ms", "bucket"),
    [
        (2.0, None, "5"),
        (5.5, None, "5"),
        (7.0, None, "10"),
        (10.5, None, "10"),
        (6.0, None, None),  # between the ranges: no create-task duration fits
        (11.0, None, None),
        (None, 4000.0, "5"),  # no probe of ours (video_id + task_id): the server's reading
        (None, 10_500.0, "10"),
        (None, None, None),
        (3.0, 9000.0, "5"),  # ours first: it is what the policy judged
    ],
)
def test_duration_bucket(ours: float | None, server_ms: float | None, bucket: str | None) -> None:
    facts = None if ours is None else Facts("mp4", duration=ours)
    assert duration_bucket(facts, ServerFacts(original_duration=server_ms)) == bucket


def _old_sqlite_ledger(path: Path) -> None:
    """A ledger as schema version 1 left it, with one session in it."""
    conn = sqlite3.connect(path)
    try:
        for statement in sqlite_store._SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO attempts (id, source, source_key, attempt_no, state, started_at,"
            " finished_at, request_body, session_id, api_base) VALUES (1, 'old', 'old', 1, 'ok',"
            " '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', '{}', '111', 'http://x')"
        )
        conn.execute(
            "INSERT INTO sessions (session_id, source, source_key, attempt_id, created_at,"
            " expires_at, fps, request_id) VALUES ('111', 'old', 'old', 1,"
            " '2026-01-01T00:00:01Z', '2026-01-02T00:00:01Z', 30, 'r-old')"
        )
        conn.commit()
    finally:
        conn.close()


def test_an_old_sqlite_ledger_migrates_on_first_use(
    api: Sandbox, media: MediaServer, tmp_path: Path
) -> None:
    path = tmp_path / "old.sqlite3"
    _old_sqlite_ledger(path)
    env = environment(api, str(path))
    shown = show_json(env, "111")  # first use: the CLI migrates it
    assert shown["fps"] == 30 and shown["request_id"] == "r-old"
    # Version 4 gives a session of an unknown key the fingerprint 'unknown': never reused.
    assert shown["duration_bucket"] is None and shown["key_fingerprint"] == "unknown"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    out = init_json(env, media.url("short.mp4"))  # and new sessions get the new fields
    assert show_json(env, out["session_id"])["duration_bucket"] == "5"
    with Ledger(path) as ledger:  # reopening a migrated ledger leaves it as it is
        assert {row.session_id for row in ledger.sessions()} == {"111", out["session_id"]}


def test_a_postgresql_ledger_records_and_migrates(
    api: Sandbox, media: MediaServer, pg_ledger: str
) -> None:
    with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
        for statement in pg_store._SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    env = environment(api, pg_ledger)
    out = init_json(env, media.url("long.mp4"))
    shown = show_json(env, out["session_id"])
    for field in NEXT_CALL_FIELDS:
        assert shown[field] is not None, field
    assert shown["duration_bucket"] == "10"
    assert shown["key_fingerprint"] == ApiKey(KEY).fingerprint()
    with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))  # one row per step


@pytest.mark.parametrize(
    "fault",
    [
        # Cloudflare's own page, as CometAPI's edge sends it when the origin takes over 100 s.
        Fault(status=524, body="<html><h1>524</h1> A timeout occurred</html>"),
        Fault(status=524),  # a Kling envelope with the status
        Fault(status=524, comet_error=True),
    ],
)
def test_524_is_ambiguous_and_not_sent_again(
    api: Sandbox, media: MediaServer, tmp_path: Path, fault: Fault
) -> None:
    # The origin got the request and did not answer in time: it may have opened a session.
    api.faults.append(fault)
    env = environment(api, str(tmp_path / "ledger.sqlite3"))
    done = cli(env, "init", "--allow-private-urls", "--json", "--video-url", media.url("short.mp4"))
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"]["kind"] == "ambiguous"
    assert api.posts() == 1
    with Ledger(env["PREFLIGHT_LEDGER"]) as ledger:
        assert [(a.state, a.http_status) for a in ledger.attempts()] == [("ambiguous", 524)]
        assert ledger.sessions() == []
