"""Issue 19 on the ledger's side, with real SQLite files, the real PostgreSQL cluster and the real
console script: reuse and claims per account, the version 4 migration, fenced claims (a holder
whose claim was taken over sends nothing more and records what it was billed for as contended),
a lease renewer and a ledger that survive their connections being terminated, a silent path
cut by the client's own read bound, an earlier attempt that may have billed stopping `init`,
`sessions import` and `sessions --attempts`, and DSN errors and warnings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from preflight.errors import ClaimLost, LedgerBusy, LedgerUnavailable
from preflight.ledger import Ledger
from preflight.ledger import pg as pg_store
from preflight.ledger import store as sqlite_store
from preflight.ledger.tables import SCHEMA_VERSION, upgrade_steps
from preflight.session.credentials import ApiKey
from preflight.testing import ROUTE, Fault, Sandbox

from .conftest import preflight_script, run_cli
from .money import SilentProxy

KEY = "sk-test-fence-5d1c8e"
OTHER_KEY = "sk-test-fence-other-93ab"
IDS = ("--video-id", "784912347344949001", "--task-id", "7")
SOURCE = "video_id=784912347344949001&task_id=7"
BODY = {"video_id": "784912347344949001", "task_id": "7"}


def posts(api: Sandbox) -> int:
    return sum(1 for r in api.requests if r.path.startswith(ROUTE))


def environment(ledger: str | Path, api: Sandbox | None, key: str = KEY) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "NO_COLOR")}
    env = {**base, "PREFLIGHT_LEDGER": str(ledger), "COMETAPI_KEY": key}
    env["PREFLIGHT_LEDGER_RETRY_S"] = "5"
    if api is not None:
        env["PREFLIGHT_API_BASE"] = api.base_url
    return env


def init(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    done = run_cli("init", "--json", *args, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    dsn: str = request.getfixturevalue("pg_ledger")
    return dsn


def steal(where: str) -> None:
    """What another process's take-over does to our claim: a new owner (and token)."""
    if where.startswith("postgresql://"):
        with psycopg.connect(where, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                "UPDATE claims SET owner = 'thief', token = nextval('claim_tokens'),"
                " lease_until = now() + interval '1 hour'"
            )
        return
    conn = sqlite3.connect(where, isolation_level=None)
    try:
        conn.execute("UPDATE locks SET owner = 'thief', pid = 1, host = 'elsewhere'")
    finally:
        conn.close()


# --- per account -------------------------------------------------------------------------------


def test_two_accounts_on_one_source_open_two_sessions(tmp_path: Path) -> None:
    # Before version 4 the second account was handed the first one's session (exit 0).
    ledger = tmp_path / "ledger.sqlite3"
    with Sandbox(key=KEY) as first, Sandbox(key=OTHER_KEY) as second:
        code_a, a, err = init(environment(ledger, first), *IDS)
        assert code_a == 0, err
        code_b, b, err = init(environment(ledger, second, OTHER_KEY), *IDS)
        assert code_b == 0, err
        assert b["reused"] is False and b["session_id"] != a["session_id"]
        assert b["key_fingerprint"] == ApiKey(OTHER_KEY).fingerprint()
        again_a = init(environment(ledger, first), *IDS)[1]
        again_b = init(environment(ledger, second, OTHER_KEY), *IDS)[1]
        assert (again_a["session_id"], again_a["reused"]) == (a["session_id"], True)
        assert (again_b["session_id"], again_b["reused"]) == (b["session_id"], True)
        assert posts(first) == posts(second) == 1


def test_the_same_base_with_another_key_is_another_account(where: str) -> None:
    mine, theirs = ApiKey(KEY).fingerprint(), ApiKey(OTHER_KEY).fingerprint()
    base = "https://api.example"
    with Ledger(where) as ledger:
        with ledger.exclusive(SOURCE, api_base=base, key_fingerprint=mine) as claim:
            attempt = ledger.begin_attempt(
                source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
                verdict="unchecked", api_base=base, key_fingerprint=mine, claim=claim,
            )  # fmt: skip
            # Another key's claim on the same source is another claim: not blocked.
            with ledger.exclusive(SOURCE, api_base=base, key_fingerprint=theirs, wait_s=0):
                pass
            ledger.record_opened(
                attempt, session_id="s-mine", data={}, http_status=200, message=None,
                request_id=None, ambiguous=False, cross_check=[], claim=claim,
            )  # fmt: skip
        found = ledger.active_session(SOURCE, api_base=base, key_fingerprint=mine)
        assert found is not None and found.session_id == "s-mine" and found.api_base == base
        assert ledger.active_session(SOURCE, api_base=base, key_fingerprint=theirs) is None
        assert ledger.active_session(SOURCE, api_base="https://b", key_fingerprint=mine) is None


# --- the version 4 migration -------------------------------------------------------------------


def _v3_rows(execute: Any, fingerprint: str) -> None:
    """An attempt and session of an unknown key, and one of a known key (version 2 stored it)."""
    for n, fp in ((1, None), (2, fingerprint)):
        execute(
            "INSERT INTO attempts (id, source, source_key, attempt_no, state, started_at,"
            " finished_at, request_body, api_base, session_id)"
            f" VALUES ({n}, 'src', 'src', 1, 'ok', '2099-01-01T00:00:00Z',"
            f" '2099-01-01T00:00:01Z', '{{}}', 'https://old.example', 'old-{n}')"
        )
        execute(
            "INSERT INTO sessions (session_id, source, source_key, attempt_id, created_at,"
            f" expires_at, key_fingerprint) VALUES ('old-{n}', 'src', 'src', {n},"
            f" '2099-01-0{n}T00:00:01Z', '2099-01-0{n + 1}T00:00:01Z', %s)"
            % ("NULL" if fp is None else f"'{fp}'")
        )


def _check_migrated(where: str, fingerprint: str) -> None:
    then = datetime(2099, 1, 1, 12, tzinfo=timezone.utc)
    with Ledger(where) as ledger:
        unknown, known = ledger.session("old-1"), ledger.session("old-2")
        assert unknown is not None and known is not None
        assert unknown.key_fingerprint == "unknown" and unknown.api_base == "https://old.example"
        assert known.key_fingerprint == fingerprint and not known.contended
        account = {"api_base": "https://old.example", "key_fingerprint": fingerprint}
        # The known key's session is reused at its time; the unknown key's never is.
        found = ledger.active_session("src", then, **account)
        assert found is not None and found.session_id == "old-2"
        other = {"api_base": "https://old.example", "key_fingerprint": "0123456789ab"}
        assert ledger.active_session("src", then, **other) is None
        (first, second) = ledger.attempts("src")
        assert (first.key_fingerprint, second.key_fingerprint) == ("unknown", fingerprint)
        # The new state is allowed by the migrated table.
        with ledger.exclusive("src", api_base="https://old.example") as claim:
            attempt = ledger.begin_attempt(
                source="src", source_key="src", attempt_no=1, request_body={}, facts=None,
                verdict=None, api_base="https://old.example", claim=claim,
            )  # fmt: skip
            steal(where)
            row = ledger.record_opened(
                attempt, session_id="new", data={}, http_status=200, message=None,
                request_id=None, ambiguous=False, cross_check=[], claim=claim,
            )  # fmt: skip
        assert row.contended and ledger.attempts("src")[-1].state == "contended"


def test_a_version_3_sqlite_ledger_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    fingerprint = ApiKey(KEY).fingerprint()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for _, statements in upgrade_steps(0, sqlite_store._SCHEMA, path, "sqlite")[:3]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        _v3_rows(conn.execute, fingerprint)
    finally:
        conn.close()
    _check_migrated(str(path), fingerprint)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_a_version_3_postgresql_ledger_migrates(pg_ledger: str) -> None:
    fingerprint = ApiKey(KEY).fingerprint()
    with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for step, statements in upgrade_steps(0, pg_store._SCHEMA, "", "postgresql")[:3]:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (step,))
        _v3_rows(conn.execute, fingerprint)
        # The rows above name their ids, as a real ledger's identity column would have given.
        conn.execute("SELECT setval(pg_get_serial_sequence('attempts', 'id'), 2)")
    _check_migrated(pg_ledger, fingerprint)
    with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == [1, 2, 3, 4, 5]


# --- one clock ---------------------------------------------------------------------------------


def test_a_session_expires_24_hours_after_the_apis_date(where: str) -> None:
    # Before: created_at and expires_at came from this host's clock, whatever the API said.
    answered = datetime(2026, 3, 1, 8, 0, 5, tzinfo=timezone.utc)
    with Ledger(where) as ledger:
        attempt = ledger.begin_attempt(
            source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
            verdict="unchecked", api_base="https://a",
        )  # fmt: skip
        row = ledger.record_opened(
            attempt, session_id="dated", data={}, http_status=200, message=None,
            request_id=None, ambiguous=False, cross_check=[], server_date=answered,
        )  # fmt: skip
    assert (row.created_at, row.expires_at) == ("2026-03-01T08:00:05Z", "2026-03-02T08:00:05Z")


# --- fenced claims -----------------------------------------------------------------------------


def test_a_holder_whose_claim_was_taken_over_sends_nothing_more(where: str) -> None:
    with Ledger(where) as ledger, ledger.exclusive(SOURCE, api_base="https://a") as claim:
        steal(where)
        with pytest.raises(ClaimLost):
            ledger.begin_attempt(
                source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
                verdict="unchecked", api_base="https://a", claim=claim,
            )  # fmt: skip
        assert ledger.attempts() == []  # the check and the row are one transaction


def test_a_real_take_over_on_postgresql_gives_a_new_token(pg_ledger: str) -> None:
    with Ledger(pg_ledger, lease_s=30) as holder, Ledger(pg_ledger) as taker:
        with holder.exclusive(SOURCE) as mine:
            attempt = holder.begin_attempt(
                source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
                verdict="unchecked", api_base="https://a", claim=mine,
            )  # fmt: skip
            with psycopg.connect(pg_ledger, autocommit=True, connect_timeout=10) as conn:
                conn.execute("UPDATE claims SET lease_until = now() - interval '1 second'")
            with taker.exclusive(SOURCE, wait_s=5) as theirs:
                assert theirs.token is not None and mine.token is not None
                assert theirs.token > mine.token
                row = holder.record_opened(
                    attempt, session_id="billed", data={}, http_status=200, message=None,
                    request_id="r", ambiguous=False, cross_check=[], claim=mine,
                )  # fmt: skip
        assert row.contended
        (only,) = holder.attempts()
        assert only.state == "contended" and only.session_id == "billed"


def test_init_records_a_session_billed_after_its_claim_was_taken_over_as_contended(
    where: str,
) -> None:
    # Before: exit 0 with nothing said, the ledger free to hold two active sessions silently.
    with Sandbox(key=KEY) as api:
        api.faults.append(Fault(on_answer=lambda: steal(where)))
        code, out, err = init(environment(where, api), *IDS)
        (opened,) = api.sessions
    assert code == 0, err
    assert out["session_id"] == opened and out["contended"] is True
    assert "contended" in err and "sessions --attempts" in err
    shown = run_cli("sessions", env=environment(where, None))
    assert shown.stdout.rstrip().endswith("CONTENDED")
    listed = run_cli("sessions", "--attempts", "--json", env=environment(where, None))
    (attempt,) = json.loads(listed.stdout)["attempts"]
    assert attempt["state"] == "contended" and attempt["session_id"] == opened
    assert attempt["pid"] is not None and attempt["host"] == socket.gethostname()


def test_a_claim_lost_between_attempts_stops_the_retry(where: str) -> None:
    # The first answer (a 500 with an error body: nothing opened) is retried; the claim is
    # taken over while it is out, so the retry must not leave. Before: a second POST.
    with Sandbox(key=KEY) as api:
        api.faults.append(Fault(status=500, delay_s=3.0))
        watcher = threading.Thread(target=_steal_once_sending, args=(where,), daemon=True)
        watcher.start()
        done = run_cli("init", "--json", *IDS, env=environment(where, api))
        watcher.join(30)
        sent = posts(api)
    assert done.returncode == 2, done.stderr
    assert "taken over" in done.stderr and "nothing was sent" in done.stderr
    assert sent == 1
    with Ledger(where) as ledger:
        assert [a.state for a in ledger.attempts()] == ["failed"]


def _steal_once_sending(where: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception), Ledger(where) as ledger:
            if any(a.state == "sending" for a in ledger.attempts()):
                steal(where)
                return
        time.sleep(0.05)


def test_a_newcomer_waits_for_a_live_holder_then_reuses_its_session(where: str) -> None:
    with Sandbox(key=KEY) as api:
        api.faults.append(Fault(delay_s=2.0))
        env = environment(where, api)
        holder = subprocess.Popen(
            [preflight_script(), "init", "--json", *IDS],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _wait_for_sending(where)  # the holder's request is out: its claim is held
            code, out, err = init(env, *IDS)
            held_out, held_err = holder.communicate(timeout=60)
        finally:
            holder.kill()
        assert holder.returncode == 0, held_err
        assert code == 0, err
        assert out["reused"] is True and out["session_id"] == json.loads(held_out)["session_id"]
        (line,) = err.strip().splitlines()
        assert line.startswith("preflight: waiting up to") and f"pid {holder.pid}" in line
        assert posts(api) == 1


def _wait_for_sending(where: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception), Ledger(where) as ledger:
            if any(a.state == "sending" for a in ledger.attempts()):
                return
        time.sleep(0.05)
    pytest.fail("the holder never sent its request")


# --- surviving the ledger's own connections ----------------------------------------------------


def _terminate(dsn: str, *, sparing: int | None = None) -> int:
    base, name = dsn.rsplit("/", 1)
    # From the cluster's own database: the ledger's may be refusing connections.
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> %s",
            (name, sparing or 0),
        ).fetchall()
    return len(rows)


def test_the_renewer_survives_its_connection_being_terminated(pg_ledger: str) -> None:
    # Before: the renewer stopped for good at its first error, and the claim lapsed.
    with Ledger(pg_ledger, lease_s=1.5) as holder, holder.exclusive(SOURCE):
        main = holder._store._conn.info.backend_pid  # type: ignore[attr-defined]
        for _ in range(3):  # the renewer's connection, each time it has come back
            time.sleep(0.8)
            _terminate(pg_ledger, sparing=main)
        time.sleep(2.0)  # past the lease: only renewal keeps the claim
        with (
            Ledger(pg_ledger) as other,
            pytest.raises(LedgerBusy),
            other.exclusive(SOURCE, wait_s=0.5),
        ):
            pass


def test_every_operation_reconnects_after_all_connections_are_terminated(pg_ledger: str) -> None:
    with Ledger(pg_ledger) as ledger:
        assert ledger.sessions() == []
        assert _terminate(pg_ledger) >= 1
        assert ledger.sessions() == []  # before: "terminating connection", exit 2
        _terminate(pg_ledger)
        attempt = ledger.begin_attempt(
            source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
            verdict="unchecked", api_base="https://a",
        )  # fmt: skip
        assert [a.id for a in ledger.attempts()] == [attempt]


@pytest.fixture
def silent_path(
    pg_ledger: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, SilentProxy]]:
    monkeypatch.setenv("PREFLIGHT_LEDGER_READ_TIMEOUT_S", "1.5")
    monkeypatch.setenv("PREFLIGHT_LEDGER_RETRY_S", "20")
    address = pg_ledger.split("@", 1)[1].split("/", 1)[0]
    host, port = address.rsplit(":", 1)
    proxy = SilentProxy((host, int(port)))
    try:
        yield pg_ledger.replace(f"@{address}/", f"@127.0.0.1:{proxy.port}/"), proxy
    finally:
        proxy.close()


def _bounded(call: Any) -> Any:
    """Run `call` in a thread; a hang (what this guards against) fails instead of blocking."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the ledger call hung on a silent path"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_a_silent_path_is_cut_by_the_read_bound_and_reconnected(
    silent_path: tuple[str, SilentProxy],
) -> None:
    # Before: statement_timeout is the server's and the path is silent: a hang without end.
    dsn, proxy = silent_path
    with Ledger(dsn) as ledger:
        assert ledger.sessions() == []
        proxy.silence_held()  # the held connection freezes; a new one is served
        assert _bounded(ledger.sessions) == []


def test_a_path_that_stays_silent_is_an_error_not_a_hang(
    silent_path: tuple[str, SilentProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, proxy = silent_path
    monkeypatch.setenv("PREFLIGHT_LEDGER_RETRY_S", "1")
    with Ledger(dsn) as ledger:
        assert ledger.sessions() == []
        proxy.silence_held()
        proxy.refuse_new()  # and nothing new gets through either
        with pytest.raises(LedgerUnavailable):
            _bounded(ledger.sessions)


# --- an earlier attempt that may have billed; sessions import and --attempts --------------------


def test_an_earlier_ambiguous_attempt_stops_init_until_imported(tmp_path: Path) -> None:
    # Before: init sent again (a second bill), exit 0, and had no way to record a printed id.
    ledger = tmp_path / "ledger.sqlite3"
    with Sandbox(key=KEY) as api:
        with Ledger(ledger) as book:
            attempt = book.begin_attempt(
                source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
                verdict="unchecked", api_base=api.base_url,
                key_fingerprint=ApiKey(KEY).fingerprint(),
            )  # fmt: skip
            book.finish_attempt(attempt, state="ambiguous", request_id="req-lost", ambiguous=True)
        env = environment(ledger, api)
        code, out, err = init(env, *IDS)
        assert code == 4 and out["error"]["kind"] == "ambiguous"
        assert out["error"]["earlier_attempt"]["request_id"] == "req-lost"
        (line,) = err.strip().splitlines()
        assert "req-lost" in line and f"pid {os.getpid()}" in line and "--force" in line
        assert f"sessions import ID --source {shlex.quote(SOURCE)}" in line
        listed = run_cli("sessions", "--attempts", env=env)
        assert listed.returncode == 0 and "ambiguous" in listed.stdout and SOURCE in listed.stdout
        imported = run_cli("sessions", "import", "800000000000000042", "--source", SOURCE,
                           "--expires", "2099-01-01T00:00:00Z", env=env)  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.startswith("IMPORTED 800000000000000042")
        code, out, err = init(env, *IDS)
        assert code == 0, err
        assert out["session_id"] == "800000000000000042" and out["reused"] is True
        assert out["expires_at"] == "2099-01-01T00:00:00Z"
        again = run_cli("sessions", "import", "800000000000000042", "--source", SOURCE, env=env)
        assert again.returncode == 2 and "already" in again.stderr
        assert posts(api) == 0


def test_an_attempt_of_another_account_does_not_stop_init(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with Sandbox(key=KEY) as api:
        with Ledger(ledger) as book:
            book.begin_attempt(
                source=SOURCE, source_key=SOURCE, attempt_no=1, request_body=BODY, facts=None,
                verdict="unchecked", api_base=api.base_url,
                key_fingerprint=ApiKey(OTHER_KEY).fingerprint(),
            )  # fmt: skip
        code, out, err = init(environment(ledger, api), *IDS)
        assert code == 0 and out["reused"] is False, err
        assert posts(api) == 1


def test_sessions_attempts_lists_nothing_risky_after_a_clean_init(tmp_path: Path) -> None:
    # The listing's SQL is the same on PostgreSQL (the contended test lists one there).
    with Sandbox(key=KEY) as api:
        env = environment(tmp_path / "ledger.sqlite3", api)
        assert init(env, *IDS)[0] == 0
    text = run_cli("sessions", "--attempts", env=env)
    assert text.returncode == 0 and text.stdout == "no attempts that may have billed\n"
    listed = run_cli("sessions", "--attempts", "--json", env=env)
    assert json.loads(listed.stdout) == {"attempts": []}


def test_a_session_the_ledger_cannot_record_names_the_import_command(pg_ledger: str) -> None:
    # Every connection is cut as the answer leaves and the server refuses new ones for longer
    # than the retry time: the billed id is printed with the command that records it.
    name = pg_ledger.rsplit("/", 1)[1]
    postgres = pg_ledger.rsplit("/", 1)[0] + "/postgres"

    def lock_out() -> None:
        with psycopg.connect(postgres, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        _terminate(pg_ledger)

    with Sandbox(key=KEY) as api:
        api.faults.append(Fault(on_answer=lock_out))
        env = {**environment(pg_ledger, api), "PREFLIGHT_LEDGER_RETRY_S": "1.5"}
        code, out, err = init(env, *IDS)
        (opened,) = api.sessions
    with psycopg.connect(postgres, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert code == 4 and out["error"]["kind"] == "unrecorded" and out["session_id"] == opened
    assert f"preflight sessions import {opened} --source {shlex.quote(SOURCE)}" in err
    assert "free space" not in err
    env.pop("PREFLIGHT_LEDGER_RETRY_S")
    imported = run_cli("sessions", "import", opened, "--source", SOURCE, env=env)
    assert imported.returncode == 0, imported.stderr
    with Sandbox(key=KEY) as later:
        code, out, err = init({**env, "PREFLIGHT_API_BASE": later.base_url}, *IDS)
    # The import records the account it is run with: the API base is part of it.
    assert code == 0 and out["reused"] is False, err


# --- DSN errors and warnings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:pw-SECRET-d51@[::1/ledger",
        "postgresql://u:pw-SECRET-d51@host/ledger?sslmode",
        "postgresql://u:pw SECRET-d51@host/ledger",
    ],
)
def test_a_malformed_dsn_is_one_line_exit_2_password_masked(dsn: str) -> None:
    # Before: a ValueError traceback, exit 1.
    commands = [("sessions",), ("init", *IDS)] if "[" in dsn else [("sessions",)]
    for command in commands:
        done = run_cli(*command, "--ledger", dsn, env=environment("unused.sqlite3", None))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "SECRET" not in done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if "warning" not in line]
        assert len(errors) == 1 and "not valid" in errors[0]


def test_a_password_inside_ledger_is_warned_about_in_one_line() -> None:
    dsn = "postgresql://u:pw-SECRET-77@127.0.0.1:9/ledger"
    env = {**environment("unused.sqlite3", None), "PREFLIGHT_LEDGER_RETRY_S": "0.5"}
    done = run_cli("sessions", "--ledger", dsn, env=env)
    assert done.returncode == 2 and "SECRET" not in done.stdout + done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if "warning" in line]
    for name in ("PGPASSWORD", "~/.pgpass", "PGSERVICE"):
        assert name in warning
    quiet = run_cli("sessions", "--ledger", "postgresql://u@127.0.0.1:9/ledger", env=env)
    assert quiet.returncode == 2 and "warning" not in quiet.stderr
