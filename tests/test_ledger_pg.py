"""The shared ledger on a real PostgreSQL server (the session's throwaway cluster, conftest.py):
one session per source across processes and "hosts", the lease takeover, the shared probe cache,
the schema version, and clear errors without the DSN's password.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from preflight.errors import LedgerError
from preflight.ledger import Ledger
from preflight.testing import ROUTE, Fault, Sandbox

from .conftest import FIXTURES, PG_PASSWORD, preflight_script, run_cli

KEY = "sk-test-SECRET-7f3a9c1e"


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout=timeout)


def environment(dsn: str, api: Sandbox | None, home: Path) -> dict[str, str]:
    """A separate "host": its own HOME (so no shared user data folder) and the shared DSN."""
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    env = {**base, "HOME": str(home), "PREFLIGHT_LEDGER": dsn, "COMETAPI_KEY": KEY}
    if api is not None:
        env["PREFLIGHT_API_BASE"] = api.base_url
    return env


def posts(api: Sandbox) -> int:
    return sum(1 for r in api.requests if r.path.startswith(ROUTE))


def test_init_records_and_sessions_lists_it(pg_ledger: str, tmp_path: Path) -> None:
    with Sandbox(key=KEY) as api:
        env = environment(pg_ledger, api, tmp_path / "a")
        done = cli(env, "init", "--json", "--video-id", "784912347344945152", "--task-id", "1")
        assert done.returncode == 0, done.stderr
        opened = json.loads(done.stdout)
        again = cli(env, "init", "--json", "--video-id", "784912347344945152", "--task-id", "1")
        assert json.loads(again.stdout)["reused"] is True
        assert posts(api) == 1
    assert PG_PASSWORD not in done.stdout + done.stderr
    assert opened["ledger"].endswith("/" + pg_ledger.rsplit("/", 1)[1])
    listed = cli(env, "sessions", "--json")
    assert [s["session_id"] for s in json.loads(listed.stdout)["sessions"]] == [
        opened["session_id"]
    ]
    shown = cli(env, "sessions", "show", opened["session_id"])
    assert json.loads(shown.stdout)["expires_at"] == opened["expires_at"]
    with Ledger(pg_ledger) as ledger:
        (attempt,) = ledger.attempts()
        assert attempt.state == "ok" and attempt.session_id == opened["session_id"]


def test_twelve_inits_racing_on_four_sources_pay_four_times(pg_ledger: str, tmp_path: Path) -> None:
    # Every request is answered 2 s late, so the 3 inits of each source overlap the holder's.
    ids = [f"78491234734494515{n}" for n in range(4)]
    with Sandbox(key=KEY) as api:
        api.faults.extend([Fault(delay_s=2.0)] * 12)
        racers = []
        for n in range(12):
            env = environment(pg_ledger, api, tmp_path / f"host{n}")
            command = ["init", "--json", "--video-id", ids[n % 4], "--task-id", "9"]
            racers.append(
                subprocess.Popen(
                    [preflight_script(), *command],
                    env=env,
                    cwd=tmp_path / f"host{n}",
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outs = []
        for racer in racers:
            stdout, stderr = racer.communicate(timeout=180)
            assert racer.returncode == 0, stderr
            assert PG_PASSWORD not in stdout + stderr
            outs.append(json.loads(stdout))
        assert posts(api) == 4
        assert len(api.sessions) == 4
    by_source: dict[str, set[str]] = {}
    for n, out in enumerate(outs):
        by_source.setdefault(ids[n % 4], set()).add(out["session_id"])
    assert all(len(sessions) == 1 for sessions in by_source.values())
    assert sorted(out["reused"] for out in outs) == [False] * 4 + [True] * 8
    with Ledger(pg_ledger) as ledger:
        assert len(ledger.sessions()) == 4
        assert [a.state for a in ledger.attempts()] == ["ok"] * 4


_HOLDER = """
import sys
from preflight.ledger import Ledger
from preflight.session.init_selection import init_session
init_session(video_id=sys.argv[1], task_id="9", ledger=Ledger(sys.argv[2], lease_s=2.0))
"""


def test_a_killed_holders_lease_is_taken_over(pg_ledger: str, tmp_path: Path) -> None:
    video_id = "784912347344945100"
    with Sandbox(key=KEY) as api:
        # The holder's request hangs; it is killed while the request is out.
        api.faults.append(Fault(delay_s=120.0))
        env = environment(pg_ledger, api, tmp_path / "holder")
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, video_id, pg_ledger],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            with Ledger(pg_ledger) as ledger:
                deadline = time.monotonic() + 60
                # The sandbox takes its fault off the list as the holder's request arrives.
                while api.faults and holder.poll() is None:
                    assert time.monotonic() < deadline, "the holder never sent its request"
                    time.sleep(0.05)
                assert holder.poll() is None, holder.stderr.read() if holder.stderr else ""
                (sending,) = ledger.attempts()
                assert sending.state == "sending"
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
        # The claim outlives its killed holder until its lease (2 s, renewed no more) expires.
        with psycopg.connect(pg_ledger, connect_timeout=10) as conn:
            row = conn.execute("SELECT pid FROM claims").fetchone()
            assert row is not None and row[0] == holder.pid
        # The taker finds the killed holder's attempt, which may have billed: it sends nothing
        # and names it (before version 4 it sent again: two POSTs, exit 0).
        taker_env = environment(pg_ledger, api, tmp_path / "taker")
        ids = ("--video-id", video_id, "--task-id", "9")
        before = posts(api)  # the stand-in counts a request once it is answered
        taker = cli(taker_env, "init", "--json", *ids)
        assert taker.returncode == 4, taker.stderr
        error = json.loads(taker.stdout)["error"]
        assert error["kind"] == "ambiguous" and error["earlier_attempt"]["pid"] == holder.pid
        assert f"pid {holder.pid}" in taker.stderr and "--force" in taker.stderr
        assert posts(api) == before
        # --force is the user saying "send again".
        forced = cli(taker_env, "init", "--json", "--force", *ids)
        assert forced.returncode == 0, forced.stderr
        taken = json.loads(forced.stdout)
        assert taken["reused"] is False and posts(api) == before + 1
        assert list(api.sessions) == [taken["session_id"]]
    with Ledger(pg_ledger) as ledger:
        states = [(a.attempt_no, a.state) for a in ledger.attempts()]
        assert [state for _, state in states] == ["sending", "ok"]
    with psycopg.connect(pg_ledger, connect_timeout=10) as conn:
        assert conn.execute("SELECT count(*) FROM claims").fetchone() == (0,)


def test_the_probe_cache_is_shared_between_hosts(pg_ledger: str, tmp_path: Path) -> None:
    video = str(FIXTURES / "media" / "fmt_mp4_h264.mp4")
    first = cli(environment(pg_ledger, None, tmp_path / "a"), "check", "--json", video)
    second = cli(environment(pg_ledger, None, tmp_path / "b"), "check", "--json", video)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    (cold,) = json.loads(first.stdout)["results"]
    (warm,) = json.loads(second.stdout)["results"]
    assert cold["probe"]["cached"] is False and warm["probe"]["cached"] is True
    assert warm["facts"] == cold["facts"]


def test_sessions_lists_the_same_from_two_hosts(pg_ledger: str, tmp_path: Path) -> None:
    with Sandbox(key=KEY) as api:
        for n, host in enumerate(("a", "b")):
            env = environment(pg_ledger, api, tmp_path / host)
            done = cli(env, "init", "--video-id", f"78491234734494520{n}", "--task-id", "1")
            assert done.returncode == 0, done.stderr
    listings = []
    for host in ("a", "b"):
        env = environment(pg_ledger, None, tmp_path / host)
        listed = subprocess.run(
            [preflight_script(), "sessions", "--json"],
            env=env, cwd=tmp_path / host, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        listings.append(json.loads(listed.stdout))
    assert listings[0] == listings[1]
    assert len(listings[0]["sessions"]) == 2
    assert not list((tmp_path / "a").rglob("*.sqlite3"))  # nothing fell back to a local file


def test_a_newer_schema_is_refused(pg_ledger: str, tmp_path: Path) -> None:
    Ledger(pg_ledger).close()
    with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(LedgerError, match="schema version 99, newer"):
        Ledger(pg_ledger)
    done = cli(environment(pg_ledger, None, tmp_path), "sessions")
    assert done.returncode == 2 and "newer than this preflight" in done.stderr
    assert "Traceback" not in done.stderr and PG_PASSWORD not in done.stderr


@pytest.mark.parametrize("wrong", ["port", "password"])
def test_an_unreachable_server_is_one_line_and_sends_nothing(
    postgres: str, tmp_path: Path, wrong: str
) -> None:
    secret = "pw-SECRET-0ff"
    dsn = postgres.replace(PG_PASSWORD, secret)
    if wrong == "port":
        dsn = dsn.replace(dsn.rsplit(":", 1)[1].split("/")[0], "9")
    with Sandbox(key=KEY) as api:
        # A closed port is retried (a server restarting) for the ledger's retry time.
        env = {**environment(dsn, api, tmp_path), "PREFLIGHT_LEDGER_RETRY_S": "1"}
        done = cli(env, "init", "--video-id", "784912347344945300", "--task-id", "1")
        assert posts(api) == 0
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "ledger postgresql://" in done.stderr
    assert secret not in done.stdout + done.stderr
    listed = cli(env, "sessions")
    assert listed.returncode == 2 and secret not in listed.stdout + listed.stderr


def test_a_read_only_server_refuses_before_sending(pg_ledger: str, tmp_path: Path) -> None:
    Ledger(pg_ledger).close()
    name = pg_ledger.rsplit("/", 1)[1]
    with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    with Sandbox(key=KEY) as api:
        done = cli(environment(pg_ledger, api, tmp_path), "init", "--video-id",
                   "784912347344945400", "--task-id", "1")  # fmt: skip
        assert posts(api) == 0
    assert done.returncode == 2 and "read-only" in done.stderr, done.stderr


def test_every_connection_lost_after_a_billed_request_is_recorded_on_new_ones(
    pg_ledger: str, tmp_path: Path
) -> None:
    name = pg_ledger.rsplit("/", 1)[1]

    def cut_every_connection() -> None:
        with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    with Sandbox(key=KEY) as api:
        api.faults.append(Fault(on_answer=cut_every_connection))
        done = cli(environment(pg_ledger, api, tmp_path), "init", "--json", "--video-id",
                   "784912347344945500", "--task-id", "1")  # fmt: skip
        (opened,) = api.sessions
    # Both the main connection and the lease renewer's were cut while the answer was on its
    # way: each reconnects, and the billed session is recorded (before: exit 4 `unrecorded`).
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["session_id"] == opened and out["contended"] is False
    assert PG_PASSWORD not in done.stdout + done.stderr
    with Ledger(pg_ledger) as ledger:
        assert [(a.state, a.session_id) for a in ledger.attempts()] == [("ok", opened)]
        assert ledger.session(opened) is not None
