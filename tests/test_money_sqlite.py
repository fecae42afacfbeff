"""At most one billed POST per (source, account) on one SQLite ledger shared by many processes
(each its own HOME): 20 racing processes on 4 sources, a holder killed after sending, two
accounts on one source. The stand-in counts each POST as it arrives; every test ends with the
invariant (money.assert_billed_once_and_known).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.testing import Fault, Sandbox

from .money import KEY, Init, assert_billed_once_and_known, host_env, video, wait_for


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return str(tmp_path / "shared" / "ledger.sqlite3")


def test_twenty_processes_on_four_sources_pay_four_times(
    ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    bodies = [video(40 + n) for n in range(4)]
    api.faults.extend([Fault(delay_s=1.0)] * 4)  # each holder's answer is late: all overlap
    inits = [
        Init(bodies[n % 4], host_env(tmp_path, f"host{n}", ledger, api)).start() for n in range(20)
    ]
    for init in inits:
        init.wait(timeout=120)
    assert_billed_once_and_known(ledger, [api], bodies, inits)
    assert [i.code for i in inits] == [0] * 20, [i.stderr for i in inits if i.code]
    assert [api.posts(body) for body in bodies] == [1] * 4
    for body in bodies:
        assert len({i.out["session_id"] for i in inits if i.body == body and i.out}) == 1


def test_a_holder_killed_after_sending_is_not_sent_again(
    ledger: str, api: Sandbox, tmp_path: Path
) -> None:
    # Before: the dead holder's lock was taken over at once and B paid again, exit 0.
    body, gate = video(50), threading.Event()
    api.faults.append(Fault(until=gate, after_processing=True))
    a = Init(body, host_env(tmp_path, "a", ledger, api)).start()
    try:
        wait_for("A's POST", lambda: api.posts(body) == 1)
        a.kill()
        b = Init(body, host_env(tmp_path, "b", ledger, api)).run()
    finally:
        gate.set()
        a.kill()
    assert_billed_once_and_known(ledger, [api], [body], [b])
    assert b.code == 4 and b.kind == "ambiguous", b.stderr
    assert "--force" in b.stderr
    forced = Init(body, host_env(tmp_path, "c", ledger, api)).run("--force")
    assert forced.code == 0 and api.posts(body) == 2  # the user said so


def test_two_accounts_on_one_source_get_a_session_each(ledger: str, tmp_path: Path) -> None:
    # Before: reuse was keyed by source alone, so the second account was handed the first's.
    body = video(51)
    with Sandbox(key=KEY) as one, Sandbox(key=KEY + "-two") as two:
        accounts = [one, two, one, two]
        one.faults.append(Fault(delay_s=0.5))
        two.faults.append(Fault(delay_s=0.5))
        inits = [
            Init(body, host_env(tmp_path, f"{n}", ledger, api, key=api.key)).start()
            for n, api in enumerate(accounts)
        ]
        for init in inits:
            init.wait()
        assert_billed_once_and_known(ledger, [one, two], [body], inits)
        assert [i.code for i in inits] == [0] * 4, [i.stderr for i in inits]
        assert one.posts(body) == 1 and two.posts(body) == 1
        for init, api in zip(inits, accounts, strict=True):
            assert init.out is not None and init.out["session_id"] in api.sessions
