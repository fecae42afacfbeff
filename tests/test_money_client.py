"""The init client's side of "at most one billed POST": a request whose answer may have been lost
after it left (a reset, a read timeout, HTTP 524, a 2xx we cannot read) is never sent again in
the same process; `Retry-After` is read defensively (never a traceback, never a long sleep); every
Outcome carries the API's clock (its Date header). Real loopback stand-in, real console script.
"""

from __future__ import annotations

import email.utils
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from preflight.errors import ApiError
from preflight.ledger import Ledger
from preflight.session.client import InitClient, Outcome
from preflight.session.credentials import ApiKey
from preflight.testing import Fault, Sandbox

from .conftest import init_env, preflight_script

KEY = "sk-test-SECRET-money-client"
BODY = {"video_id": "784912347344945152", "task_id": "7849"}


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
def env(api: Sandbox, tmp_path: Path) -> dict[str, str]:
    return init_env(api.base_url, KEY, tmp_path)


def init_json(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """`preflight init --json` for BODY; a run that outlives `timeout` fails the test (that is
    what a 120 s sleep on a Retry-After looks like)."""
    done = subprocess.run(
        [preflight_script(), "init", "--json", "--video-id", BODY["video_id"], "--task-id",
         BODY["task_id"], *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def states(env: dict[str, str]) -> list[str]:
    with Ledger(env["PREFLIGHT_LEDGER"]) as ledger:
        return [a.state for a in ledger.attempts()]


class Book:
    """A Recorder that keeps what the client told it, for the library-level tests."""

    def __init__(self) -> None:
        self.begun: list[int] = []
        self.outcomes: list[Outcome] = []

    def begin(self, attempt_no: int) -> int:
        self.begun.append(attempt_no)
        return attempt_no

    def finish(self, attempt_id: int, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def client(base: str, slept: list[float], **kwargs: Any) -> InitClient:
    # The waits are recorded instead of slept: what the client *would* wait is the assertion.
    return InitClient(base, ApiKey(KEY), sleep=slept.append, **kwargs)


# An answer whose request may have opened a session is never sent again


@pytest.mark.parametrize(
    "fault",
    [
        Fault(drop=True, after_processing=True),  # reset after the session was opened
        Fault(status=524, after_processing=True),  # Cloudflare's timeout: the origin got it
        Fault(status=524, code=5002, after_processing=True),  # a 524 with a JSON envelope
    ],
    ids=["reset", "524-html", "524-json"],
)
def test_an_answer_lost_after_sending_is_not_sent_again(
    env: dict[str, str], api: Sandbox, fault: Fault
) -> None:
    api.faults.append(fault)
    code, out = init_json(env)
    assert code == 4
    assert out["error"]["kind"] == "ambiguous" and out["error"]["ambiguous"] is True
    assert "--force sends again" in out["error"]["message"]
    assert api.posts(BODY) == 1 and len(api.sessions) == 1  # billed once, and only once
    assert states(env) == ["ambiguous"]


def test_a_read_timeout_after_sending_is_not_sent_again(api: Sandbox) -> None:
    api.faults.append(Fault(delay_s=30, after_processing=True))
    slept: list[float] = []
    book = Book()
    with pytest.raises(ApiError) as raised:
        client(api.base_url, slept, read_timeout_s=0.5).init_selection(BODY, book)
    assert raised.value.kind == "ambiguous" and raised.value.attempts == 1
    assert book.begun == [1] and [o.state for o in book.outcomes] == ["ambiguous"]
    assert slept == [] and api.posts(BODY) == 1


def test_a_success_we_cannot_read_is_not_sent_again(api: Sandbox) -> None:
    # HTTP 200 that is not JSON: the API may have opened a session behind it.
    api.faults.append(Fault(status=200, body="<html>ok</html>", after_processing=True))
    book = Book()
    with pytest.raises(ApiError) as raised:
        client(api.base_url, []).init_selection(BODY, book)
    assert raised.value.kind == "protocol" and raised.value.ambiguous is True
    assert "not sent again" in str(raised.value)
    assert [o.state for o in book.outcomes] == ["ambiguous"] and api.posts(BODY) == 1


def test_answers_that_prove_nothing_opened_are_still_retried(
    env: dict[str, str], api: Sandbox
) -> None:
    api.faults.extend(
        [
            Fault(status=429, code=1302, retry_after="0"),
            Fault(status=503, code=5001, retry_after="0"),
            Fault(status=502, body="<html>bad gateway</html>", retry_after="0"),
        ]
    )
    code, out = init_json(env)
    assert code == 0 and out["attempts"] == 4 and out["ambiguous"] is False
    assert api.posts(BODY) == 4 and len(api.sessions) == 1
    assert states(env) == ["failed", "failed", "failed", "ok"]


def test_a_refused_connection_is_retried_and_sends_nothing(tmp_path: Path) -> None:
    # Nothing listens there (a server started and stopped): every attempt fails before sending.
    with Sandbox(key=KEY) as gone:
        base = gone.base_url
    slept: list[float] = []
    book = Book()
    with pytest.raises(ApiError) as raised:
        client(base, slept, max_attempts=3).init_selection(BODY, book)
    assert raised.value.kind == "network" and raised.value.ambiguous is False
    assert "gave up after 3 attempts" in str(raised.value)
    assert book.begun == [1, 2, 3] and len(slept) == 2
    assert [o.state for o in book.outcomes] == ["failed"] * 3


# Retry-After


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "1e999", "soon", "Fri, 99 Foo 2026"])
def test_a_meaningless_retry_after_is_treated_as_absent(
    env: dict[str, str], api: Sandbox, value: str
) -> None:
    # Before: nan was a ValueError traceback (exit 1); inf and 1e999 slept 120 s.
    api.faults.append(Fault(status=429, code=1302, retry_after=value))
    code, out = init_json(env)
    assert code == 0 and out["attempts"] == 2, out
    assert api.posts(BODY) == 2


def test_a_meaningless_retry_after_waits_the_usual_back_off(api: Sandbox) -> None:
    api.faults.extend([Fault(status=429, code=1302, retry_after="nan")] * 2)
    slept: list[float] = []
    client(api.base_url, slept, backoff_s=0.5).init_selection(BODY, Book())
    assert len(slept) == 2 and all(0.25 <= s <= 1.0 for s in slept)


@pytest.mark.parametrize("value", ["100000", "121"])
def test_a_retry_after_beyond_the_limit_is_the_answer(
    env: dict[str, str], api: Sandbox, value: str
) -> None:
    # Before: slept 120 s per retry (the run timed out here).
    api.faults.append(Fault(status=429, code=1302, retry_after=value))
    code, out = init_json(env, timeout=60)
    assert code == 4 and out["error"]["kind"] == "rate_limit"
    assert f"wait {value} s" in out["error"]["message"]
    assert api.posts(BODY) == 1 and states(env) == ["failed"]


def test_a_retry_after_date_is_read_on_the_apis_clock() -> None:
    # The API's clock is 2 h behind ours; its Retry-After date is 3 s after its own Date.
    with Sandbox(key=KEY, clock_offset_s=-7200) as api:
        when = email.utils.format_datetime(
            datetime.now(timezone.utc) - timedelta(seconds=7200 - 3), usegmt=True
        )
        api.faults.append(Fault(status=429, code=1302, retry_after=when))
        slept: list[float] = []
        client(api.base_url, slept).init_selection(BODY, Book())
    # Read on our clock it would be "2 h ago" (0 s) or, 2 h ahead, a refusal.
    assert len(slept) == 1 and 1.0 <= slept[0] <= 4.0


def test_a_retry_after_within_the_limit_is_waited(api: Sandbox) -> None:
    api.faults.append(Fault(status=503, code=5001, retry_after="120"))
    slept: list[float] = []
    client(api.base_url, slept).init_selection(BODY, Book())
    assert slept == [120.0] and api.posts(BODY) == 2


# The API's clock on every Outcome


def test_every_outcome_carries_the_apis_date() -> None:
    with Sandbox(key=KEY, clock_offset_s=-3 * 3600) as api:
        api.faults.append(Fault(status=429, code=1302, retry_after="0"))
        book = Book()
        response = client(api.base_url, []).init_selection(BODY, book)
    expected = datetime.now(timezone.utc) - timedelta(hours=3)
    assert [o.state for o in book.outcomes] == ["failed", "ok"]
    for outcome in book.outcomes:
        assert outcome.server_date is not None
        assert abs((outcome.server_date - expected).total_seconds()) < 60
    assert response.server_date == book.outcomes[-1].server_date


def test_no_answer_no_date(api: Sandbox) -> None:
    api.faults.append(Fault(drop=True, after_processing=True))
    book = Book()
    with pytest.raises(ApiError):
        client(api.base_url, []).init_selection(BODY, book)
    assert [o.server_date for o in book.outcomes] == [None]


def test_the_stand_in_counts_a_post_before_answering(api: Sandbox) -> None:
    # The answer is held; the POST is already counted (a client that dies now was billed).
    gate = threading.Event()
    api.faults.append(Fault(until=gate, after_processing=True))
    book = Book()
    worker = threading.Thread(target=client(api.base_url, []).init_selection, args=(BODY, book))
    worker.start()
    deadline = time.monotonic() + 30
    while api.posts(BODY) == 0:
        assert time.monotonic() < deadline, "the POST never arrived"
        time.sleep(0.02)
    assert api.requests == [] and len(api.sessions) == 1 and book.outcomes == []
    gate.set()
    worker.join(timeout=30)
    assert [o.state for o in book.outcomes] == ["ok"] and len(api.requests) == 1
