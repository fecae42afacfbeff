"""At most one billed POST per (source, account) on a shared PostgreSQL ledger, through what
happens to real processes and a real server: a holder paused past its lease, its renewer's
connection terminated, every ledger connection terminated, the holder killed after sending, the
server stopped and started, the path to it gone silent, a host clock hours off, 30 processes on 6
sources (two accounts on one source: test_money_sqlite.py). The stand-in counts each POST as it
arrives; every test ends with the invariant (money.assert_billed_once_and_known).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from preflight.testing import Fault, Sandbox

from .conftest import PgCluster, run_cli
from .money import (
    KEY,
    LEASE_S,
    Init,
    SilentProxy,
    assert_billed_once_and_known,
    host_env,
    video,
    wait_for,
)


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


def held(api: Sandbox, n: int = 1) -> list[threading.Event]:
    """The next n answers are held (each session already opened and billed) until released."""
    gates = [threading.Event() for _ in range(n)]
    api.faults.extend(Fault(until=gate, after_processing=True) for gate in gates)
    return gates


def backends(dsn: str) -> dict[int, datetime]:
    """The ledger database's other server processes and when each last ran a statement."""
    database = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT pid, query_start FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return {pid: started for pid, started in rows}


def terminate(dsn: str, pids: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_holder_paused_past_its_lease_is_not_paid_for_twice(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: B took the lapsed claim and sent again; both exited 0 (2 POSTs).
    body, (gate,) = video(1), held(api)
    a = Init(body, host_env(tmp_path, "a", pg_ledger, api)).start()
    assert a.proc is not None
    try:
        wait_for("A's POST", lambda: api.posts(body) == 1)
        os.kill(a.proc.pid, signal.SIGSTOP)  # a laptop lid, a frozen VM
        time.sleep(LEASE_S * 2)  # A's claim lapses
        b = Init(body, host_env(tmp_path, "b", pg_ledger, api)).run()
        os.kill(a.proc.pid, signal.SIGCONT)
        gate.set()
        a.wait()
    finally:
        if a.proc.poll() is None:
            os.kill(a.proc.pid, signal.SIGCONT)
        gate.set()
        a.kill()
    assert_billed_once_and_known(pg_ledger, [api], [body], [a, b])
    assert b.code == 4 and b.kind == "ambiguous", b.stderr
    assert a.code == 0 and a.out is not None and a.out["session_id"] in api.sessions


def test_a_renewer_whose_connection_is_terminated_keeps_the_claim(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: the renewer thread died on its first error, the lease lapsed, B sent again.
    body, (gate,) = video(2), held(api)
    a = Init(body, host_env(tmp_path, "a", pg_ledger, api)).start()
    try:
        wait_for("A's POST", lambda: api.posts(body) == 1)
        # A's renewer is the one of A's connections that keeps running statements (its first
        # renewal is lease_s / 3 after the claim).
        time.sleep(LEASE_S)
        before = backends(pg_ledger)
        time.sleep(LEASE_S)
        after = backends(pg_ledger)
        renewing = [pid for pid, at in after.items() if before.get(pid) not in (None, at)]
        assert len(renewing) == 1, (before, after)
        terminate(pg_ledger, renewing)
        time.sleep(LEASE_S * 2)  # the lease would have lapsed without a renewal
        b = Init(body, host_env(tmp_path, "b", pg_ledger, api)).start()
        time.sleep(LEASE_S)  # B is waiting for A's claim by now (or, before, had sent)
        gate.set()
        a.wait()
        b.wait()
    finally:
        gate.set()
        a.kill()
    assert_billed_once_and_known(pg_ledger, [api], [body], [a, b])
    assert a.code == 0 and b.code == 0, (a.stderr, b.stderr)
    assert b.out is not None and a.out is not None
    assert b.out["reused"] is True and b.out["session_id"] == a.out["session_id"]


def test_every_ledger_connection_terminated_mid_request_loses_nothing(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: A exited 4 `unrecorded`, and the next init on the source paid again.
    body, (gate,) = video(3), held(api)
    a = Init(body, host_env(tmp_path, "a", pg_ledger, api)).start()
    try:
        wait_for("A's POST", lambda: api.posts(body) == 1)
        terminate(pg_ledger, list(backends(pg_ledger)))
        gate.set()
        a.wait()
    finally:
        gate.set()
        a.kill()
    b = Init(body, host_env(tmp_path, "b", pg_ledger, api)).run()
    assert_billed_once_and_known(pg_ledger, [api], [body], [a, b])
    assert a.code == 0, a.stderr
    assert b.code == 0 and b.out is not None and b.out["reused"] is True


def test_a_holder_killed_after_sending_is_not_sent_again(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: B took over once the lease lapsed and sent again, exit 0, "ambiguous": false.
    body, (gate,) = video(4), held(api)
    a = Init(body, host_env(tmp_path, "a", pg_ledger, api)).start()
    try:
        wait_for("A's POST", lambda: api.posts(body) == 1)
        a.kill()  # SIGKILL: billed, and nobody will ever hear the answer
        time.sleep(LEASE_S * 2)
        b = Init(body, host_env(tmp_path, "b", pg_ledger, api)).run()
    finally:
        gate.set()
        a.kill()
    assert_billed_once_and_known(pg_ledger, [api], [body], [b])
    assert b.code == 4 and b.kind == "ambiguous", b.stderr
    assert "--force" in b.stderr


def test_the_server_stopped_and_started_mid_request_loses_nothing(
    pg_cluster: PgCluster, pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: all three exited 4 `unrecorded` and a rerun paid all three again.
    bodies = [video(10 + n) for n in range(3)]
    gates = held(api, 3)
    inits = [
        Init(body, host_env(tmp_path, f"h{n}", pg_ledger, api)).start()
        for n, body in enumerate(bodies)
    ]
    try:
        wait_for("three POSTs", lambda: all(api.posts(body) == 1 for body in bodies))
        pg_cluster.stop("fast")
        for gate in gates:
            gate.set()  # the answers arrive while the ledger's server is down
        time.sleep(1.0)
        pg_cluster.start()
        for init in inits:
            init.wait()
    finally:
        pg_cluster.start()  # the rest of the suite needs it (a no-op if it runs)
        for gate in gates:
            gate.set()
        for init in inits:
            init.kill()
    again = [
        Init(body, host_env(tmp_path, f"r{n}", pg_ledger, api)).start()
        for n, body in enumerate(bodies)
    ]
    for init in again:
        init.wait()
    assert_billed_once_and_known(pg_ledger, [api], bodies, inits + again)
    assert [i.code for i in inits + again] == [0] * 6, [i.stderr for i in inits + again]
    assert all(i.out is not None and i.out["reused"] for i in again)


def test_a_silent_path_to_the_server_is_an_error_not_a_hang(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: A hung without limit (the server's statement_timeout cannot see a silent path)
    # and never printed its billed session, while B, on a host with a working path, took the
    # lapsed claim and paid again.
    body, (gate,) = video(5), held(api)
    server = urlsplit(pg_ledger)
    assert server.port is not None
    proxy = SilentProxy(("127.0.0.1", server.port))
    through = pg_ledger.replace(f":{server.port}/", f":{proxy.port}/")
    # A gives its billed session 4 s to reach the ledger, then says what it was billed for.
    a = Init(body, host_env(tmp_path, "a", through, api, PREFLIGHT_LEDGER_RETRY_S="4")).start()
    try:
        wait_for("A's POST", lambda: api.posts(body) == 1)
        proxy.freeze()  # for good: no RST, no FIN, nothing
        gate.set()  # A has its session and cannot reach the ledger
        time.sleep(LEASE_S * 2)
        b = Init(body, host_env(tmp_path, "b", pg_ledger, api)).run()
        a.wait(timeout=45)
    finally:
        gate.set()
        proxy.close()
        a.kill()
    assert b.code == 4 and b.kind == "ambiguous", b.stderr
    assert a.code == 4 and a.kind == "unrecorded" and a.out is not None, a.stderr
    opened = a.out["session_id"]
    assert opened in api.sessions and "sessions import" in a.stderr
    # What the user does with the printed id, on a host that reaches the ledger.
    c_env = host_env(tmp_path, "c", pg_ledger, api)
    source = f"video_id={body['video_id']}&task_id={body['task_id']}"  # as the hint quotes it
    imported = run_cli("sessions", "import", opened, "--source", source, env=c_env)
    assert imported.returncode == 0, imported.stderr
    c = Init(body, c_env).run()
    assert c.code == 0 and c.out is not None and c.out["reused"] is True
    assert c.out["session_id"] == opened
    assert_billed_once_and_known(pg_ledger, [api], [body], [a, b, c])


def test_a_host_clock_hours_off_uses_the_apis_and_the_databases(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: a host 25 h fast paid again for a minutes-old session, and one 2 h fast recorded
    # an expiry 2 h late (a correct host would reuse it 2 h after the API expired it).
    def skewed(name: str, offset: str) -> Init:
        env = host_env(tmp_path, name, pg_ledger, api)
        return Init(body, env, prefix=["faketime", "-m", "-f", offset])

    body = video(6)
    first = Init(body, host_env(tmp_path, "right", pg_ledger, api)).run()
    fast = skewed("fast25", "+25h").run()
    assert first.code == 0 and fast.code == 0, fast.stderr
    assert fast.out is not None and first.out is not None
    assert fast.out["reused"] is True and fast.out["session_id"] == first.out["session_id"]
    body = video(7)
    two_hours = skewed("fast2", "+2h").run()
    assert two_hours.code == 0 and two_hours.out is not None, two_hours.stderr
    expires = datetime.strptime(two_hours.out["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    expected = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=24)
    assert abs((expires - expected).total_seconds()) < 600, two_hours.out["expires_at"]
    assert_billed_once_and_known(pg_ledger, [api], [video(6), video(7)], [first, fast, two_hours])


def test_thirty_processes_on_six_sources_pay_six_times(
    pg_ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    bodies = [video(20 + n) for n in range(6)]
    api.faults.extend([Fault(delay_s=1.0)] * 6)  # each holder's answer is late: all overlap
    # Nobody dies here: a long lease, so 30 processes starting on 2 cores cannot starve a
    # renewer past it.
    inits = [
        Init(
            bodies[n % 6], host_env(tmp_path, f"h{n}", pg_ledger, api, PREFLIGHT_LEASE_S="20")
        ).start()
        for n in range(30)
    ]
    for init in inits:
        init.wait(timeout=120)
    assert_billed_once_and_known(pg_ledger, [api], bodies, inits)
    assert [i.code for i in inits] == [0] * 30, [i.stderr for i in inits if i.code]
    assert [api.posts(body) for body in bodies] == [1] * 6
    for body in bodies:
        mine = {i.out["session_id"] for i in inits if i.body == body and i.out}
        assert len(mine) == 1
