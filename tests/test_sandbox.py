"""The loopback init-selection sandbox, over real HTTP: auth, body rules, video judging, faults.

Videos are served by testing.MediaServer from the fixtures, so the sandbox judges them as the API
would.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from preflight.testing import DEMO_KEY, ROUTE, Fault, Sandbox
from preflight.testing.media_server import MediaServer

from .conftest import FIXTURES, ROOT

MEDIA = FIXTURES / "media"
ID_BODY = {"video_id": "784912347344945152", "task_id": "784912347344945100"}
# Generous: only a guard against a hung test, never a speed requirement.
CLIENT_TIMEOUT_S = 60.0


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer(MEDIA) as server:
        yield server


def post(
    sandbox: Sandbox,
    body: Any = None,
    *,
    key: str | None = DEMO_KEY,
    data: bytes | None = None,
    timeout: float = CLIENT_TIMEOUT_S,
) -> requests.Response:
    """POST the route on a fresh connection, as the client's first attempt would."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    if data is None:
        return requests.post(sandbox.url, json=body, headers=headers, timeout=timeout)
    return requests.post(sandbox.url, data=data, headers=headers, timeout=timeout)


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Poll for something a handler thread does after the client has already given up."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


def assert_envelope(response: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload: dict[str, Any] = response.json()
    assert payload["code"] == code
    assert isinstance(payload["message"], str) and payload["message"]
    assert re.fullmatch(r"[0-9a-f]{32}", payload["request_id"])
    return payload


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Auth and body rules


def test_missing_key_answers_cometapi_shape(sandbox: Sandbox) -> None:
    response = post(sandbox, ID_BODY, key=None)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "missing api key",
            "type": "comet_api_error",
            "param": "",
            "code": "missing_api_key",
        }
    }
    assert sandbox.sessions == {}
    [logged] = sandbox.requests
    assert (logged.authorized, logged.status, logged.code) == (False, 401, None)


def test_wrong_key_answers_1001(sandbox: Sandbox) -> None:
    payload = assert_envelope(post(sandbox, ID_BODY, key="not-the-key"), 401, 1001)
    assert payload["message"] == "authentication failed: invalid key"
    assert "data" not in payload
    assert sandbox.sessions == {}
    assert sandbox.requests[0].authorized is False


def test_key_must_be_a_bearer_header(sandbox: Sandbox) -> None:
    headers = {"Authorization": DEMO_KEY}  # the key without "Bearer "
    response = requests.post(sandbox.url, json=ID_BODY, headers=headers, timeout=30)
    assert_envelope(response, 401, 1001)


@pytest.mark.parametrize(
    ("body", "data", "named"),
    [
        (None, b"{not json", "not JSON"),
        (None, b"", "not JSON"),
        ({}, None, "exactly one of video_url or video_id"),
        ({"video_id": "1"}, None, "'task_id'"),
        ({"video_url": "ftp://example.com/a.mp4"}, None, "$.video_url"),
        ({**ID_BODY, "video_url": "https://example.com/a.mp4"}, None, "cannot be combined"),
        ({**ID_BODY, "extra": 1}, None, "unknown field 'extra'"),
        ([ID_BODY], None, "must be an object"),
    ],
)
def test_bad_body_answers_1201_naming_the_problem(
    sandbox: Sandbox, body: Any, data: bytes | None, named: str
) -> None:
    payload = assert_envelope(post(sandbox, body, data=data), 400, 1201)
    assert named in payload["message"]
    assert sandbox.sessions == {}


# The video_id path


def test_video_id_opens_a_billed_session(sandbox: Sandbox) -> None:
    response = post(sandbox, ID_BODY)
    payload = assert_envelope(response, 200, 0)
    assert payload["message"] == "success"
    data = payload["data"]
    session_id = data["session_id"]
    assert re.fullmatch(r"[1-9]\d{17}", session_id)
    assert data == {
        "status": 0,
        "session_id": session_id,
        "fps": 30.0,
        "original_duration": 5000,
        "width": 1280,
        "height": 720,
        "total_frame": 150,
        "normalized_video": f"{sandbox.base_url}/normalized/{session_id}.mp4",
        "final_unit_deduction": "1",
    }
    session = sandbox.sessions[session_id]
    assert session["body"] == ID_BODY
    assert session["request_id"] == payload["request_id"]
    [logged] = sandbox.requests
    assert logged.path == ROUTE
    assert (logged.authorized, logged.status, logged.code) == (True, 200, 0)
    assert (logged.body, logged.session_id) == (ID_BODY, session_id)


def test_each_call_opens_a_new_session(sandbox: Sandbox) -> None:
    first = post(sandbox, ID_BODY).json()["data"]["session_id"]
    second = post(sandbox, ID_BODY).json()["data"]["session_id"]
    assert first != second
    assert set(sandbox.sessions) == {first, second}


@pytest.mark.parametrize("missing", ["video_id", "task_id"])
def test_missing_id_answers_1203(missing: str) -> None:
    with Sandbox(missing_ids=frozenset({ID_BODY[missing]})) as sandbox:
        assert_envelope(post(sandbox, ID_BODY), 404, 1203)
        assert sandbox.sessions == {}
        assert_envelope(post(sandbox, {"video_id": "other", "task_id": "other"}), 200, 0)


# The video_url path, judged by the preflight library


def test_url_that_passes_opens_a_session_with_probed_facts(
    sandbox: Sandbox, media: MediaServer
) -> None:
    body = {"video_url": media.url("fmt_mp4_h264.mp4")}
    payload = assert_envelope(post(sandbox, body), 200, 0)
    data = payload["data"]
    assert data["status"] == 0
    assert (data["width"], data["height"], data["fps"]) == (1280, 720, 30.0)
    assert isinstance(data["original_duration"], int) and data["original_duration"] > 0
    assert data["total_frame"] > 0
    assert sandbox.sessions[data["session_id"]]["body"] == body


def test_url_that_breaks_a_rule_is_refused_without_a_session(
    sandbox: Sandbox, media: MediaServer
) -> None:
    payload = assert_envelope(post(sandbox, {"video_url": media.url("fps_29.97.mp4")}), 200, 0)
    assert payload["data"] == {"status": 1}
    assert payload["message"].startswith("video does not meet requirements: ")
    assert "29.97" in payload["message"]
    assert sandbox.sessions == {}
    assert sandbox.requests[0].session_id is None


def test_unreachable_url_answers_1201(sandbox: Sandbox) -> None:
    body = {"video_url": f"http://127.0.0.1:{free_port()}/fmt_mp4_h264.mp4"}
    payload = assert_envelope(post(sandbox, body), 400, 1201)
    assert payload["message"].startswith("video could not be downloaded or read: ")
    assert sandbox.sessions == {}


def test_unreadable_video_answers_1201(sandbox: Sandbox, media: MediaServer) -> None:
    payload = assert_envelope(post(sandbox, {"video_url": media.url("err_text.mp4")}), 400, 1201)
    assert payload["message"].startswith("video could not be downloaded or read: ")


def test_private_urls_can_be_refused(media: MediaServer) -> None:
    with Sandbox(allow_private_urls=False) as sandbox:
        body = {"video_url": media.url("fmt_mp4_h264.mp4")}
        payload = assert_envelope(post(sandbox, body), 200, 0)
        assert payload["data"]["status"] == 1
        assert sandbox.sessions == {}


# Other paths and methods


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ROUTE),
        ("PUT", ROUTE),
        ("POST", "/kling/v1/videos/multi-elements/add-selection"),
        ("GET", "/normalized/123456789012345678.mp4"),
        ("POST", ROUTE + "/extra"),
    ],
)
def test_other_paths_and_methods_answer_1203(sandbox: Sandbox, method: str, path: str) -> None:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    response = requests.request(
        method, sandbox.base_url + path, json=ID_BODY, headers=headers, timeout=30
    )
    assert_envelope(response, 404, 1203)
    assert sandbox.sessions == {}
    assert sandbox.requests[0].path == path


def test_faults_are_not_spent_on_other_paths(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=503))
    requests.get(sandbox.base_url + "/", timeout=30)
    assert sandbox.faults == [Fault(status=503)]
    assert_envelope(post(sandbox, ID_BODY), 503, 5001)


# Faults


def test_status_fault_answers_a_kling_envelope_without_a_session(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=429, code=1302))
    payload = assert_envelope(post(sandbox, ID_BODY), 429, 1302)
    assert payload["message"] == "too many requests"
    assert sandbox.sessions == {}
    assert sandbox.requests[0].code == 1302


def test_status_fault_message_and_default_code(sandbox: Sandbox) -> None:
    sandbox.faults += [Fault(status=500, code=5000, message="boom"), Fault(status=504)]
    assert assert_envelope(post(sandbox, ID_BODY), 500, 5000)["message"] == "boom"
    assert assert_envelope(post(sandbox, ID_BODY), 504, 5002)["message"] == "server timeout"


def test_comet_error_fault(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=429, comet_error=True, message="quota exceeded"))
    response = post(sandbox, ID_BODY)
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "message": "quota exceeded",
            "type": "comet_api_error",
            "param": "",
            "code": "rate_limit_exceeded",
        }
    }
    assert sandbox.sessions == {}


def test_raw_body_fault_sends_html(sandbox: Sandbox) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    sandbox.faults.append(Fault(status=502, body=page))
    response = post(sandbox, ID_BODY)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == page
    assert sandbox.sessions == {}


def test_retry_after_fault_sets_the_header(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=503, code=5001, retry_after="7"))
    response = post(sandbox, ID_BODY)
    assert_envelope(response, 503, 5001)
    assert response.headers["Retry-After"] == "7"
    assert "Retry-After" not in post(sandbox, ID_BODY).headers


def test_a_524_is_cloudflares_page_after_the_session_was_opened(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=524, after_processing=True))
    response = post(sandbox, ID_BODY)
    assert response.status_code == 524 and "Error code 524" in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert len(sandbox.sessions) == 1 and sandbox.posts(ID_BODY) == 1  # billed, unanswered


def test_the_date_header_follows_the_sandboxs_clock() -> None:
    import email.utils

    with Sandbox(clock_offset_s=-3600) as shifted:
        sent = email.utils.parsedate_to_datetime(post(shifted, ID_BODY).headers["Date"])
    assert 3500 < time.time() - sent.timestamp() < 3700


def test_an_odd_retry_after_is_sent_as_given(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=429, code=1302, retry_after="nan"))
    assert post(sandbox, ID_BODY).headers["Retry-After"] == "nan"


def test_status_fault_answers_before_auth(sandbox: Sandbox) -> None:
    # A gateway error comes before the key is even looked at, as at a real proxy.
    sandbox.faults.append(Fault(status=503))
    assert_envelope(post(sandbox, ID_BODY, key="wrong"), 503, 5001)


def test_drop_fault_gives_a_connection_error_and_no_session(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(drop=True))
    with pytest.raises(requests.ConnectionError):
        post(sandbox, ID_BODY)
    assert sandbox.sessions == {}
    [logged] = sandbox.requests
    assert (logged.status, logged.code, logged.session_id) == (0, None, None)
    assert_envelope(post(sandbox, ID_BODY), 200, 0)  # the next call is served


def test_delay_fault_outlasts_a_client_timeout(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(delay_s=3600))
    with pytest.raises(requests.ReadTimeout):
        post(sandbox, ID_BODY, timeout=0.2)
    assert sandbox.sessions == {}  # still asleep: nothing was processed


def test_delay_fault_then_answers_normally(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(delay_s=0.05))
    assert_envelope(post(sandbox, ID_BODY), 200, 0)
    assert len(sandbox.sessions) == 1


def test_drop_after_processing_bills_a_session_the_client_never_sees(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(drop=True, after_processing=True))
    with pytest.raises(requests.ConnectionError):
        post(sandbox, ID_BODY)
    [session_id] = sandbox.sessions
    assert sandbox.sessions[session_id]["body"] == ID_BODY
    [logged] = sandbox.requests
    assert (logged.status, logged.session_id) == (0, session_id)


def test_delay_after_processing_bills_a_session_before_the_timeout(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(delay_s=3600, after_processing=True))
    with pytest.raises(requests.ReadTimeout):
        post(sandbox, ID_BODY, timeout=0.5)
    wait_until(lambda: sandbox.sessions, "the delayed request opened a session")
    assert len(sandbox.sessions) == 1


def test_status_after_processing_bills_a_session_behind_an_error(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(status=504, code=5002, after_processing=True))
    assert_envelope(post(sandbox, ID_BODY), 504, 5002)
    [session_id] = sandbox.sessions
    assert sandbox.requests[0].session_id == session_id


def test_after_processing_opens_nothing_when_the_request_is_invalid(sandbox: Sandbox) -> None:
    sandbox.faults.append(Fault(drop=True, after_processing=True))
    with pytest.raises(requests.ConnectionError):
        post(sandbox, {})
    assert sandbox.sessions == {}


def test_faults_are_fifo_and_consumed(sandbox: Sandbox) -> None:
    sandbox.faults += [Fault(status=503, code=5001), Fault(), Fault(status=429, code=1303)]
    assert_envelope(post(sandbox, ID_BODY), 503, 5001)
    assert sandbox.faults == [Fault(), Fault(status=429, code=1303)]
    assert_envelope(post(sandbox, ID_BODY), 200, 0)  # Fault() = behave normally once
    assert_envelope(post(sandbox, ID_BODY), 429, 1303)
    assert sandbox.faults == []
    assert_envelope(post(sandbox, ID_BODY), 200, 0)
    assert len(sandbox.sessions) == 2


def test_faults_given_at_construction() -> None:
    scripted = [Fault(status=500, code=5000)]
    with Sandbox(faults=scripted) as sandbox:
        assert_envelope(post(sandbox, ID_BODY), 500, 5000)
        assert_envelope(post(sandbox, ID_BODY), 200, 0)
    assert scripted == [Fault(status=500, code=5000)]  # the caller's list is left alone


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code": 1302},  # no status: the code would be silently ignored
        {"message": "x"},
        {"comet_error": True},
        {"retry_after": "1"},
        {"status": 42},
        {"status": 502, "body": "<p>x</p>", "comet_error": True},
        {"status": 502, "drop": True},
        {"after_processing": True},
        {"until": threading.Event(), "retry_after": "1"},  # retry_after still needs a status
        {"delay_s": -1.0},
    ],
)
def test_contradictory_faults_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**kwargs)


# Secrets, quiet and lifecycle


def test_the_key_never_appears_in_a_response(media: MediaServer) -> None:
    key, wrong = "sandbox-test-secret-1", "presented-wrong-secret-2"
    bodies: list[Any] = [
        ID_BODY,
        {"video_url": media.url("fmt_mp4_h264.mp4")},
        {"video_url": media.url("fps_29.97.mp4")},
        {"video_url": f"http://127.0.0.1:{free_port()}/{key}.mp4"},
        {"video_url": f"ftp://{key}/{wrong}"},  # the validation message quotes the value
        {"video_id": key, "task_id": wrong, "video_url": f"https://{key}"},
        {key: wrong},
    ]
    faults = [
        Fault(status=429, code=1302),
        Fault(status=401, comet_error=True),
        Fault(status=400, code=1201, after_processing=True),
    ]
    with Sandbox(key=key, faults=faults) as sandbox:
        # (the key presented, what came back): a presented key is a secret too, even a wrong one.
        answered = [
            (presented, post(sandbox, body, key=presented))
            for body in bodies
            for presented in (key, wrong, None)
        ]
        answered.append((key, requests.get(sandbox.base_url + "/" + key, timeout=30)))
    assert {r.status_code for _, r in answered} >= {200, 400, 401, 404, 429}
    for presented, response in answered:
        for secret in {key, presented or key}:
            assert secret not in response.text
            assert secret not in str(response.headers)


def test_nothing_is_printed_per_request(
    sandbox: Sandbox, media: MediaServer, capfd: pytest.CaptureFixture[str]
) -> None:
    sandbox.faults += [Fault(drop=True), Fault(status=502, body="<p>bad gateway</p>")]
    with pytest.raises(requests.ConnectionError):
        post(sandbox, ID_BODY)
    post(sandbox, ID_BODY)
    post(sandbox, ID_BODY, key="wrong")
    post(sandbox, data=b"\xff\xfe not json")
    post(sandbox, {"video_url": media.url("fmt_mp4_h264.mp4")})
    requests.get(sandbox.base_url + "/nowhere", timeout=30)
    with socket.create_connection(("127.0.0.1", sandbox.port)) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")  # a malformed request line
        raw.recv(4096)
    assert len(sandbox.requests) == 6
    assert capfd.readouterr() == ("", "")


def test_stop_is_idempotent_and_does_not_wait_for_a_sleeping_handler() -> None:
    sandbox = Sandbox(faults=[Fault(delay_s=3600, after_processing=True)]).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(sandbox, ID_BODY)
        except requests.RequestException as exc:
            errors.append(exc)

    before = set(threading.enumerate())
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait_until(lambda: sandbox.sessions, "the request reached its delay")
    handlers = set(threading.enumerate()) - before - {caller}
    assert handlers  # the sandbox's handler thread, asleep in its delay
    stopper = threading.Thread(target=sandbox.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=30)  # the handler sleeps for an hour: this only fails on a hang
    assert not stopper.is_alive()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert len(errors) == 1  # the sleeping request was hung up on, not answered
    # Woken by stop(), not left sleeping out its hour as a daemon thread.
    wait_until(lambda: not any(t.is_alive() for t in handlers), "the handler thread ended")
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        post(sandbox, ID_BODY, timeout=5)
    with pytest.raises(RuntimeError):
        sandbox.start()


def test_stop_before_start_releases_the_port() -> None:
    sandbox = Sandbox()
    port = sandbox.port
    sandbox.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


# The command


def test_module_prints_shell_lines_serves_and_exits_0_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "preflight.testing.sandbox", "--port", "0", "--key", "cli key's"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        values = dict(shlex.split(line)[0].split("=", 1) for line in lines)
        assert set(values) == {"PREFLIGHT_API_BASE", "COMETAPI_KEY"}
        assert values["COMETAPI_KEY"] == "cli key's"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", values["PREFLIGHT_API_BASE"])
        response = requests.post(
            values["PREFLIGHT_API_BASE"] + ROUTE,
            json=ID_BODY,
            headers={"Authorization": "Bearer cli key's"},
            timeout=30,
        )
        assert_envelope(response, 200, 0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert (out, err) == ("", "")
