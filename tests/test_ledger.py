"""The SQLite ledger on real files: attempts before sends, sessions and expiry, and the per-source
lock under real concurrent processes (spawned, each with its own connection).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from preflight.errors import LedgerBusy, LedgerError, PreflightError
from preflight.ledger import Ledger, default_path
from preflight.ledger.book import SESSION_LIFETIME
from preflight.ledger.store import SCHEMA_VERSION, user_data_dir

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
BODY = {"video_url": "https://example.com/a.mp4"}
DATA = {
    "status": 0,
    "session_id": "s1",
    "fps": 30.0,
    "original_duration": 5000,
    "width": 1280,
    "height": 720,
    "total_frame": 150,
    "normalized_video": "https://cdn.example/n.mp4",
    "final_unit_deduction": 1.5,
}
SPAWN = multiprocessing.get_context("spawn")


def begin(ledger: Ledger, key: str = "k", now: datetime | None = None, **kw: Any) -> int:
    args: dict[str, Any] = {
        "source": key,
        "source_key": key,
        "attempt_no": 1,
        "request_body": BODY,
        "facts": {"fps": 30.0},
        "verdict": "pass",
        "api_base": "http://127.0.0.1:1",
        "now": now,
        **kw,
    }
    return ledger.begin_attempt(**args)


def record(ledger: Ledger, session_id: str, key: str = "k", now: datetime | None = None) -> Any:
    attempt = begin(ledger, key, now)
    ledger.finish_attempt(
        attempt, state="ok", http_status=200, code=0, session_id=session_id, now=now
    )
    return ledger.record_session(
        session_id=session_id,
        source=key,
        source_key=key,
        attempt_id=attempt,
        data=DATA,
        request_id="r1",
        now=now,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, path: Path) -> str | Path:
    """A fresh ledger of each kind, for what both must do alike (the server starts once)."""
    if request.param == "sqlite":
        return path
    dsn: str = request.getfixturevalue("pg_ledger")
    return dsn


def test_an_attempt_is_visible_to_other_connections_before_it_finishes(where: str | Path) -> None:
    with Ledger(where) as writer, Ledger(where) as reader:
        attempt = begin(writer, now=T0)
        [row] = reader.attempts()
        assert (row.id, row.state, row.finished_at) == (attempt, "sending", None)
        assert row.request_body == BODY and row.facts == {"fps": 30.0}
        assert row.started_at == "2025-03-01T12:00:00Z"
        # Not just another connection: another process sees it too.
        script = (
            "import sys; from preflight.ledger import Ledger; "
            "print(Ledger(sys.argv[1]).attempts()[0].state)"
        )
        seen = subprocess.run(
            [sys.executable, "-c", script, str(where)], capture_output=True, text=True, check=True
        )
        assert seen.stdout.strip() == "sending"


def test_finish_updates_and_a_second_finish_keeps_what_it_does_not_name(where: str | Path) -> None:
    with Ledger(where) as ledger:
        attempt = begin(ledger, now=T0)
        ledger.finish_attempt(
            attempt,
            state="ambiguous",
            message="connection reset",
            ambiguous=True,
            now=T0 + timedelta(seconds=3),
        )
        ledger.finish_attempt(
            attempt,
            state="ok",
            http_status=200,
            code=0,
            request_id="r9",
            session_id="s9",
            cross_check=[{"field": "fps", "ours": 30, "server": 25}],
        )
        [row] = ledger.attempts("k")
        assert (row.state, row.http_status, row.code, row.request_id, row.session_id) == (
            "ok",
            200,
            0,
            "r9",
            "s9",
        )
        assert row.message == "connection reset" and row.ambiguous is True
        assert row.cross_check == [{"field": "fps", "ours": 30, "server": 25}]
        assert row.finished_at is not None and row.finished_at.endswith("Z")
        with pytest.raises(ValueError):
            ledger.finish_attempt(attempt, state="sending")
        with pytest.raises(LedgerError):
            ledger.finish_attempt(attempt + 100, state="failed")


def test_attempts_are_oldest_first_and_filter_by_source(where: str | Path) -> None:
    with Ledger(where) as ledger:
        ids = [begin(ledger, key) for key in ("a", "b", "a")]
        assert [a.id for a in ledger.attempts()] == ids
        assert [a.id for a in ledger.attempts("a")] == [ids[0], ids[2]]
        assert ledger.attempts("nobody") == []


def test_record_and_active_session(where: str | Path) -> None:
    with Ledger(where) as ledger:
        assert ledger.active_session("k", now=T0) is None
        row = record(ledger, "s1", now=T0)
        assert (row.created_at, row.expires_at) == ("2025-03-01T12:00:00Z", "2025-03-02T12:00:00Z")
        assert (row.fps, row.original_duration, row.width, row.height, row.total_frame) == (
            30.0,
            5000.0,
            1280,
            720,
            150,
        )
        assert row.final_unit_deduction == "1.5" and row.request_id == "r1"
        assert row.normalized_video == "https://cdn.example/n.mp4"
        assert ledger.active_session("k", now=T0 + timedelta(hours=1)) == row
        assert ledger.active_session("other", now=T0) is None
        assert row.to_dict()["session_id"] == "s1" and row.to_dict()["width"] == 1280
        # Recording the same session again keeps the first record.
        again = ledger.record_session(
            session_id="s1",
            source="k",
            source_key="k",
            attempt_id=row.attempt_id,
            data={},
            request_id=None,
        )
        assert again == row


def test_only_known_fields_are_stored_and_odd_types_become_null(where: str | Path) -> None:
    with Ledger(where) as ledger:
        attempt = begin(ledger)
        row = ledger.record_session(
            session_id="odd",
            source="k",
            source_key="k",
            attempt_id=attempt,
            data={"session_id": "odd", "width": "wide", "fps": True, "height": 720.0},
            request_id=None,
        )
        assert (row.width, row.fps, row.height, row.total_frame) == (None, None, 720, None)


def test_sessions_expire_after_24_hours(where: str | Path) -> None:
    with Ledger(where) as ledger:
        row = record(ledger, "s1", now=T0)
        later = T0 + timedelta(hours=25)
        assert timedelta(hours=24) == SESSION_LIFETIME
        assert row.active(T0 + timedelta(hours=23, minutes=59)) and not row.active(later)
        assert ledger.active_session("k", now=later) is None
        fresh = record(ledger, "s2", now=later)
        assert ledger.active_session("k", now=later) == fresh
        assert [s.session_id for s in ledger.sessions(active_only=True, now=later)] == ["s2"]
        assert [s.session_id for s in ledger.sessions(now=later)] == ["s2", "s1"]


def test_sessions_are_newest_first_and_active_session_is_the_newest(where: str | Path) -> None:
    with Ledger(where) as ledger:
        for hour, session_id in enumerate(["s1", "s2", "s3"]):
            record(ledger, session_id, now=T0 + timedelta(hours=hour))
        record(ledger, "same-second", now=T0 + timedelta(hours=2))
        assert [s.session_id for s in ledger.sessions()] == ["same-second", "s3", "s2", "s1"]
        active = ledger.active_session("k", now=T0 + timedelta(hours=3))
        assert active is not None and active.session_id == "same-second"


def test_session_lookup(where: str | Path) -> None:
    with Ledger(where) as ledger:
        record(ledger, "s1", now=T0)
        found = ledger.session("s1")
        assert found is not None and found.source_key == "k"
        assert ledger.session("missing") is None


def test_a_session_only_on_its_attempt_row_is_known_for_24_hours(where: str | Path) -> None:
    with Ledger(where) as ledger:
        attempt = begin(ledger, now=T0)
        ledger.finish_attempt(attempt, state="ok", session_id="lone", now=T0)
        found = ledger.session("lone")
        assert found is not None and found.attempt_id == attempt
        assert (found.created_at, found.expires_at) == (
            "2025-03-01T12:00:00Z",
            "2025-03-02T12:00:00Z",
        )
        assert ledger.active_session("k", now=T0 + timedelta(hours=23)) == found
        assert ledger.active_session("k", now=T0 + timedelta(hours=25)) is None


def test_naive_and_offset_times_are_stored_as_utc(where: str | Path) -> None:
    with Ledger(where) as ledger:
        plus_two = timezone(timedelta(hours=2))
        begin(ledger, now=datetime(2025, 3, 1, 14, 0, 0, tzinfo=plus_two))
        begin(ledger, now=datetime(2025, 3, 1, 12, 0, 0))
        assert {a.started_at for a in ledger.attempts()} == {"2025-03-01T12:00:00Z"}


@pytest.mark.parametrize("extra", ["api_key", "Authorization", "callback_url"])
def test_the_request_body_guard(where: str | Path, extra: str) -> None:
    with Ledger(where) as ledger:
        with pytest.raises(ValueError, match=extra):
            begin(ledger, request_body={**BODY, extra: "sk-secret"})
        assert ledger.attempts() == []
        begin(ledger, request_body={"video_id": "784912347344945152", "task_id": "7849"})


def test_files_are_private(path: Path) -> None:
    with Ledger(path) as ledger:
        begin(ledger)
        for each in [path, *path.parent.glob(path.name + "-*")]:
            assert stat.S_IMODE(each.stat().st_mode) == 0o600, each
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_database_is_wal_and_versioned(path: Path) -> None:
    Ledger(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"attempts", "sessions", "locks"} <= tables
    finally:
        conn.close()
    Ledger(path).close()  # reopening an existing ledger leaves it as it is


def test_a_newer_schema_is_refused(path: Path) -> None:
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerError, match="upgrade preflight"):
        Ledger(path)


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are not the droids\n" * 100)
    with pytest.raises(LedgerError) as raised:
        Ledger(bogus)
    message = str(raised.value)
    assert str(bogus) in message and "\n" not in message
    assert isinstance(raised.value, PreflightError)


def test_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(LedgerError, match="a-file"):
        Ledger(tmp_path / "a-file" / "sub" / "ledger.sqlite3")


def test_a_ledger_error_is_not_a_usage_error_but_still_exits_2() -> None:
    # Raised only before anything is sent (after a send it is SessionUnrecorded, exit 4): not a
    # "usage" error, yet nothing happened, so scripts keep seeing 2.
    from preflight.errors import SessionUnrecorded, UsageError
    from preflight.status import ExitCode, exit_code_for_error

    for error in (LedgerError("x"), LedgerBusy("x")):
        assert not isinstance(error, UsageError)
        assert exit_code_for_error(error) == ExitCode.USAGE == 2
    unrecorded = SessionUnrecorded("x", session_id="s1")
    assert exit_code_for_error(unrecorded) == ExitCode.API_ERROR == 4
    assert ExitCode.INTERRUPTED == 130


def test_the_probe_cache_shares_the_ledger_file(tmp_path: Path) -> None:
    from preflight.cache import ProbeCache
    from preflight.facts import Facts

    path = tmp_path / "deep" / "ledger.sqlite3"
    cache = ProbeCache(path)
    try:
        cache.put("k1", Facts(container="mp4"), [])
        assert cache.get("k1") == (Facts(container="mp4"), [])
        assert cache.get("k2") is None
    finally:
        cache.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (stored_at,) = sql(path, "SELECT stored_at FROM probe_cache")[0]
    assert len(stored_at) == 20 and stored_at.endswith("Z")
    with Ledger(path) as ledger:  # the same file is a ledger as well
        assert ledger.sessions() == []


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFLIGHT_LEDGER", str(tmp_path / "x.sqlite3"))
    assert default_path() == str(tmp_path / "x.sqlite3")
    monkeypatch.delenv("PREFLIGHT_LEDGER")
    assert default_path() == os.path.join(platformdirs.user_data_dir("preflight"), "ledger.sqlite3")


@pytest.mark.parametrize("xdg", [None, "", "/srv/data", "/srv/data/", "relative/data", "  "])
@pytest.mark.parametrize("home", ["/home/ana", "/home/ana/", "relative-home", None])
def test_the_data_folder_is_platformdirs_own(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None, home: str | None
) -> None:
    # user_data_dir answers the usual Linux case itself (platformdirs costs a cached check ~10 ms
    # of imports): whatever the environment, the folder must be the one platformdirs names.
    for name, value in (("XDG_DATA_HOME", xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert user_data_dir() == platformdirs.user_data_dir("preflight")


# ---- the lock, with real processes ------------------------------------------------------------


def init_once(path: str, key: str, start: Any) -> None:
    """What `init` does with the ledger, in miniature: check, send (sleep), record, in the lock."""
    with Ledger(path) as ledger:
        start.wait()
        with ledger.exclusive(key, wait_s=120):
            if ledger.active_session(key) is None:
                attempt = ledger.begin_attempt(
                    source=key,
                    source_key=key,
                    attempt_no=1,
                    request_body={"video_url": key},
                    facts=None,
                    verdict="pass",
                    api_base="http://127.0.0.1:1",
                )
                time.sleep(0.05)
                ledger.finish_attempt(attempt, state="ok", http_status=200, code=0)
                ledger.record_session(
                    session_id=uuid.uuid4().hex,
                    source=key,
                    source_key=key,
                    attempt_id=attempt,
                    data={},
                    request_id=None,
                )


def hold_lock(path: str, key: str, held: Any, release: Any) -> None:
    with Ledger(path) as ledger, ledger.exclusive(key):
        held.set()
        release.wait(60)


def run_inits(path: Path, keys: list[str]) -> None:
    start = SPAWN.Event()
    procs = [SPAWN.Process(target=init_once, args=(str(path), key, start)) for key in keys]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(180)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)


def sql(path: Path, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Reach into the file from outside, as another program would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def now_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_intact(path: Path) -> None:
    assert sql(path, "PRAGMA integrity_check") == [("ok",)]
    assert sql(path, "SELECT count(*) FROM locks") == [(0,)]


def test_six_processes_one_source_open_one_session(path: Path) -> None:
    run_inits(path, ["https://example.com/a.mp4"] * 6)  # the first of them creates the file
    with Ledger(path) as ledger:
        assert len(ledger.sessions()) == 1
        [attempt] = ledger.attempts()
        assert attempt.state == "ok"
    assert_intact(path)


def test_three_sources_three_processes_each_open_three_sessions(path: Path) -> None:
    keys = [f"https://example.com/{n}.mp4" for n in range(3)]
    run_inits(path, keys * 3)
    with Ledger(path) as ledger:
        assert sorted(s.source_key for s in ledger.sessions()) == keys
        assert sorted(a.source_key for a in ledger.attempts()) == keys
    assert_intact(path)


def test_a_dead_holder_is_replaced_at_once(path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with Ledger(path) as ledger:
        dead = (gone.pid, socket.gethostname(), now_stamp())
        sql(
            path,
            "INSERT INTO locks (source_key, pid, host, acquired_at) VALUES ('k', ?, ?, ?)",
            dead,
        )
        with ledger.exclusive("k", wait_s=0):
            assert sql(path, "SELECT pid FROM locks") == [(os.getpid(),)]
    assert_intact(path)


def test_an_old_lock_is_stale_even_if_its_holder_lives(path: Path) -> None:
    with Ledger(path) as ledger:
        old = (os.getppid(), "2000-01-01T00:00:00Z")
        sql(
            path,
            "INSERT INTO locks (source_key, pid, host, acquired_at) "
            "VALUES ('k', ?, 'elsewhere', ?)",
            old,
        )
        with ledger.exclusive("k", wait_s=0):
            pass
        # A fresh lock from another host cannot be probed: it is waited for, then LedgerBusy.
        sql(
            path,
            "INSERT INTO locks (source_key, pid, host, acquired_at) "
            "VALUES ('k', 1, 'elsewhere', ?)",
            (now_stamp(),),
        )
        with pytest.raises(LedgerBusy), ledger.exclusive("k", wait_s=0.2):
            pass


def test_a_live_holder_makes_others_wait_then_give_up(path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(path), "k", held, release))
    holder.start()
    try:
        assert held.wait(60)
        with Ledger(path) as ledger:
            with pytest.raises(LedgerBusy) as raised, ledger.exclusive("k", wait_s=0.2):
                pass
            assert f"pid {holder.pid}" in str(raised.value) and "\n" not in str(raised.value)
            assert isinstance(raised.value, PreflightError)
            with ledger.exclusive("other", wait_s=0.2):
                pass  # other sources are not blocked
            release.set()
            with ledger.exclusive("k", wait_s=60):
                pass  # and once it lets go, we get it
    finally:
        release.set()
        holder.join(60)
    assert holder.exitcode == 0
    assert_intact(path)


def test_the_lock_is_released_on_exceptions_and_only_if_ours(path: Path) -> None:
    with Ledger(path) as ledger:
        with pytest.raises(RuntimeError), ledger.exclusive("k"):
            raise RuntimeError("boom")
        assert sql(path, "SELECT count(*) FROM locks") == [(0,)]
        with ledger.exclusive("k"):
            # Someone judged us stale and took over: leaving must not remove their lock.
            sql(path, "UPDATE locks SET pid = 1, host = 'elsewhere', owner = 'elsewhere:1:x'")
        assert sql(path, "SELECT pid FROM locks") == [(1,)]
