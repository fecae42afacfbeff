"""`preflight init` end to end: the real CLI, the loopback stand-in API, a real SQLite ledger.

Nothing is mocked: fixtures are served over HTTP, the sandbox fetches and judges them itself.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight.facts import Facts
from preflight.ledger import Ledger
from preflight.report.sessions import print_init
from preflight.session import CrossCheck, InitResult, ServerFacts, cross_check, init_session
from preflight.testing import ROUTE, Fault, Sandbox
from preflight.testing.media_server import MediaServer
from preflight.testing.tasks import KlingTask

from .conftest import FIXTURES, init_env, preflight_script

KEY = "sk-test-SECRET-7f3a9c1e"
MEDIA = FIXTURES / "media"


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer(MEDIA) as server:
        yield server


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
def env(api: Sandbox, tmp_path: Path) -> dict[str, str]:
    return init_env(api.base_url, KEY, tmp_path)


def init(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [preflight_script(), "init", "--allow-private-urls", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def init_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    done = init(env, "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def _attempts(env: dict[str, str]) -> list[Any]:
    path = Path(env["PREFLIGHT_LEDGER"])
    if not path.exists():
        return []
    with Ledger(path) as ledger:
        return ledger.attempts()


def posts(api: Sandbox) -> int:
    return sum(1 for r in api.requests if r.path.startswith(ROUTE))


def test_opens_a_session_and_records_it(
    env: dict[str, str], api: Sandbox, media: MediaServer
) -> None:
    code, out, _ = init_json(env, "--video-url", media.url("fmt_mp4_h264.mp4"))
    assert code == 0, out
    assert isinstance(out["session_id"], str) and out["session_id"] in api.sessions
    assert out["reused"] is False and out["expires_at"] and out["request_id"]
    assert out["server"]["width"] == 1280 and out["server"]["height"] == 720
    assert out["verdict"] == "pass" and out["cross_check"] == []
    listed = subprocess.run(
        [preflight_script(), "sessions", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [s["session_id"] for s in json.loads(listed.stdout)["sessions"]] == [out["session_id"]]
    shown = subprocess.run(
        [preflight_script(), "sessions", "show", out["session_id"]],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["expires_at"] == out["expires_at"]


def test_reuse_and_force(env: dict[str, str], api: Sandbox, media: MediaServer) -> None:
    url = media.url("fmt_mp4_h264.mp4")
    _, first, _ = init_json(env, "--video-url", url)
    code, again, _ = init_json(env, "--video-url", url)
    assert code == 0 and again["reused"] is True and again["session_id"] == first["session_id"]
    assert posts(api) == 1
    code, forced, _ = init_json(env, "--video-url", url, "--force")
    assert code == 0 and forced["reused"] is False
    assert forced["session_id"] != first["session_id"] and posts(api) == 2


@pytest.mark.parametrize(
    ("name", "exit_code"), [("fps_29.97.mp4", 1), ("trunc_60pct.mp4", 3), ("missing.mp4", 1)]
)
def test_a_video_that_fails_preflight_sends_nothing(
    env: dict[str, str], api: Sandbox, media: MediaServer, name: str, exit_code: int
) -> None:
    code, out, _ = init_json(env, "--video-url", media.url(name))
    assert code == exit_code and out["session_id"] is None and out["check"] is not None
    assert api.requests == []


def test_usage_errors_send_nothing(env: dict[str, str], api: Sandbox) -> None:
    assert init(env, "--video-id", "784912347344945152").returncode == 2
    assert init(env).returncode == 2
    remote = init(env, "--video-id", "1", "--task-id", "2", "--api-base", "http://example.com")
    assert remote.returncode == 2 and "https" in remote.stderr
    nokey = {k: v for k, v in env.items() if k != "COMETAPI_KEY"}
    missing = init(nokey, "--video-id", "1", "--task-id", "2")
    assert missing.returncode == 2 and "COMETAPI_KEY" in missing.stderr
    assert api.requests == []


def test_video_id_path(env: dict[str, str], api: Sandbox) -> None:
    code, out, _ = init_json(env, "--video-id", "784912347344945152", "--task-id", "7849")
    # The task was looked up and judged first (issue 23): its facts pass.
    assert code == 0 and out["verdict"] == "pass" and out["session_id"]
    assert out["check"]["kling"]["task_status"] == "succeed"


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        (Fault(status=401, code=1001), "auth", "COMETAPI_KEY"),
        (Fault(status=401, comet_error=True), "auth", "COMETAPI_KEY"),
        (Fault(status=429, code=1100), "account", "account"),
        (Fault(status=429, code=1101), "arrears", "top up"),
        (Fault(status=429, code=1102), "quota", "pack"),
        (Fault(status=403, code=1103), "permission", "plan"),
        (Fault(status=400, code=1201, message="video_url is invalid"), "invalid", "video_url"),
        (Fault(status=400, code=1300), "policy", "policy"),
        (Fault(status=400, code=1301), "content", "content"),
        (Fault(status=429, code=1304), "allow_list", "allow-list"),
    ],
)
def test_business_errors_are_terminal_with_a_clear_line(
    env: dict[str, str], api: Sandbox, fault: Fault, kind: str, words: str
) -> None:
    api.faults.append(fault)
    done = init(env, "--video-id", "784912347344945152", "--task-id", "7849")
    assert done.returncode == 4
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert words in done.stderr
    assert posts(api) == 1  # never retried
    code, out, _ = init_json(env, "--video-id", "784912347344945152", "--task-id", "7849")
    assert code == 0  # the fault was used up: the same call now succeeds
    assert out["session_id"]


def test_not_found_id(env: dict[str, str], tmp_path: Path) -> None:
    # The task query knows the video; the init route no longer does (deleted in between, say).
    task = KlingTask("1", "text2video", videos=(("404404", "", "5"),))
    with Sandbox(key=KEY, missing_ids=frozenset({"404404"}), tasks={"1": task}) as sandbox:
        local = {**env, "PREFLIGHT_API_BASE": sandbox.base_url}
        code, out, _ = init_json(local, "--video-id", "404404", "--task-id", "1")
    assert code == 4 and out["error"]["code"] == 1203 and out["error"]["kind"] == "not_found"


def test_the_server_refusing_the_video_is_an_api_error(
    env: dict[str, str], api: Sandbox, media: MediaServer, tmp_path: Path
) -> None:
    # Our house policy allows 25 fps; the API's does not, so the server refuses the video.
    house = tmp_path / "house.json"
    house.write_text(json.dumps({"extends": "cometapi", "fps": {"allowed": [25, 30]}}))
    code, out, _ = init_json(env, "--policy", str(house), "--video-url", media.url("fps_25.mp4"))
    assert code == 4 and out["error"]["kind"] == "refused" and out["session_id"] is None


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(status=429, code=1302, retry_after="0")],
        [Fault(status=429, retry_after="0"), Fault(status=503)],
        [Fault(status=502, body="<html><h1>502 Bad Gateway</h1></html>"), Fault(status=500)],
        [Fault(status=429, code=1303), Fault(status=504, code=5002)],
    ],
)
def test_retries_that_succeed(
    env: dict[str, str], api: Sandbox, media: MediaServer, faults: list[Fault]
) -> None:
    api.faults.extend(faults)
    code, out, _ = init_json(env, "--video-url", media.url("fmt_mp4_h264.mp4"))
    assert code == 0 and out["attempts"] == len(faults) + 1
    assert posts(api) == len(faults) + 1
    states = [a.state for a in Ledger(env["PREFLIGHT_LEDGER"]).attempts()]
    assert states == ["failed"] * len(faults) + ["ok"]


def test_retries_that_give_up(env: dict[str, str], api: Sandbox) -> None:
    api.faults.extend([Fault(status=503)] * 6)
    done = init(env, "--video-id", "784912347344945152", "--task-id", "7849")
    assert done.returncode == 4 and "4 attempts" in done.stderr
    assert posts(api) == 4


def test_a_lost_answer_is_not_sent_again_and_marked_ambiguous(
    env: dict[str, str], api: Sandbox, media: MediaServer
) -> None:
    # The call is billed and has no idempotency key: the lost answer may have opened a session.
    api.faults.extend([Fault(drop=True, after_processing=True)] * 2)
    code, out, _ = init_json(env, "--video-url", media.url("fmt_mp4_h264.mp4"))
    assert code == 4 and out["error"]["kind"] == "ambiguous" and out["error"]["ambiguous"] is True
    assert out["error"]["attempts"] == 1 and out["session_id"] is None
    assert posts(api) == 1 and len(api.sessions) == 1
    states = [a.state for a in Ledger(env["PREFLIGHT_LEDGER"]).attempts()]
    assert states == ["ambiguous"]


def test_a_killed_init_leaves_its_attempt(env: dict[str, str], api: Sandbox) -> None:
    api.faults.append(Fault(delay_s=60))
    proc = subprocess.Popen(
        [preflight_script(), "init", "--video-id", "784912347344945152", "--task-id", "7849"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Kill it while it waits for the (delayed) answer: its attempt row is already there.
        deadline = time.monotonic() + 60
        while not _attempts(env) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the request is on the wire or in the sandbox's delay by now
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    attempts = Ledger(env["PREFLIGHT_LEDGER"]).attempts()
    assert [(a.state, a.request_body) for a in attempts] == [
        ("sending", {"video_id": "784912347344945152", "task_id": "7849"})
    ]


def test_concurrent_inits_open_one_session_per_source(
    env: dict[str, str], api: Sandbox, media: MediaServer
) -> None:
    api.faults.extend([Fault(delay_s=0.3)] * 2)  # widen the race window
    urls = [media.url("fmt_mp4_h264.mp4")] * 4 + [media.url("fps_30.mp4")] * 3
    procs = [
        subprocess.Popen(
            [preflight_script(), "init", "--json", "--allow-private-urls", "--video-url", url],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outs = [json.loads(p.communicate(timeout=180)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(api.sessions) == 2 and posts(api) == 2
    for url in set(urls):
        mine = [o for o, u in zip(outs, urls, strict=True) if u == url]
        assert len({o["session_id"] for o in mine}) == 1
        assert sum(not o["reused"] for o in mine) == 1


def test_the_key_appears_nowhere(
    env: dict[str, str], api: Sandbox, media: MediaServer, tmp_path: Path
) -> None:
    api.faults.extend(
        [
            Fault(status=500, body=f"<html>upstream said {KEY}</html>"),
            Fault(status=400, code=1201, message=f"bad header Bearer {KEY}"),
        ]
    )
    runs = [
        init(env, "--debug", "--video-url", media.url("fmt_mp4_h264.mp4")),
        init(env, "--debug", "--force", "--video-url", media.url("fmt_mp4_h264.mp4")),
        init(env, "--json", "--force", "--video-url", media.url("fmt_mp4_h264.mp4")),
        init({**env, "COMETAPI_KEY": KEY + "x"}, "--force", "--video-id", "1", "--task-id", "2"),
    ]
    assert [r.returncode for r in runs] == [4, 0, 0, 4]
    assert "Authorization: Bearer ***" in runs[1].stderr
    for run in runs:
        assert KEY not in run.stdout + run.stderr
    ledger = Path(env["PREFLIGHT_LEDGER"])
    for path in ledger.parent.glob(ledger.name + "*"):
        assert KEY.encode() not in path.read_bytes()


def test_key_file_must_not_be_world_readable(
    env: dict[str, str], api: Sandbox, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o644)
    nokey = {k: v for k, v in env.items() if k != "COMETAPI_KEY"}
    args = (
        "--video-id",
        "784912347344945152",
        "--task-id",
        "7849",
        "--api-key-file",
        str(key_file),
    )
    loose = init(nokey, *args)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr and posts(api) == 0
    key_file.chmod(0o600)
    assert init(nokey, *args).returncode == 0


def test_dry_run_sends_nothing(env: dict[str, str], api: Sandbox, media: MediaServer) -> None:
    code, out, _ = init_json(env, "--dry-run", "--video-url", media.url("fmt_mp4_h264.mp4"))
    assert code == 0 and out["dry_run"] is True and out["session_id"] is None
    assert api.requests == []


def test_library_init_session(
    api: Sandbox, media: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preflight.pipeline import CheckOptions
    from preflight.session.credentials import ApiKey

    result = init_session(
        video_url=media.url("fmt_mp4_h264.mp4"),
        api_base=api.base_url,
        api_key=ApiKey(KEY),
        ledger=tmp_path / "l.sqlite3",
        options=CheckOptions(allow_private_urls=True),
    )
    assert result.session_id in api.sessions and result.reused is False
    assert result.check is not None and result.check.verdict == "pass"
    assert sys.modules["preflight"].init_session is init_session
    assert isinstance(result.server, ServerFacts) and result.server.width == 1280
    assert list(result.to_dict()["server"]) == [
        "fps",
        "original_duration",
        "width",
        "height",
        "total_frame",
        "normalized_video",
        "final_unit_deduction",
    ]


# The cross-check: our probe's Facts against the server's reading, both typed


def _facts(**values: Any) -> Facts:
    base: dict[str, Any] = {"container": "mp4", "width": 1920, "height": 1080, "fps": 30.0}
    return Facts(**{**base, "display_width": 1920, "display_height": 1080, **values})


def test_cross_check_finds_what_the_server_read_differently() -> None:
    facts = _facts(duration=5.0, frame_count=150)
    server = ServerFacts.from_data(
        {"fps": 25, "original_duration": 5400, "width": 1280, "height": 1080, "total_frame": 150}
    )
    found = [item.to_dict() for item in cross_check(facts, server)]
    # The server's values stay as it sent them (25, not 25.0); its milliseconds become seconds.
    assert found == [
        {"field": "fps", "ours": 30.0, "server": 25},
        {"field": "duration", "ours": 5.0, "server": 5.4},
        {"field": "width", "ours": 1920, "server": 1280},
    ]


def test_cross_check_tolerates_rounding_rotation_and_missing_readings() -> None:
    rotated = _facts(width=1920, height=1080, display_width=1080, display_height=1920, duration=5.0)
    # Within a frame of duration, 0.01 fps, the displayed size, and fields the server left out.
    server = ServerFacts.from_data({"fps": 30.004, "original_duration": 5030, "width": 1080})
    assert cross_check(rotated, server) == []
    unread = _facts(width=None, display_width=None)
    assert cross_check(unread, ServerFacts(width=1280)) == [CrossCheck("width", None, 1280)]


def test_text_output_shows_the_server_reading_and_each_cross_check() -> None:
    result = InitResult(
        source="video_id=1&task_id=2",
        body={},
        verdict="unchecked",
        session_id="7",
        expires_at="2030-01-01T00:00:00Z",
        server=ServerFacts(fps=30, original_duration=5000, width=1280, height=720, total_frame=150),
        cross_check=[CrossCheck("fps", 25.0, 30)],
    )
    shown = io.StringIO()
    print_init(result, shown, as_json=False)
    assert "server read: 1280x720, 30 fps, 5.000 s, 150 frames; cost None" in shown.getvalue()
    assert "! cross-check: fps: ours 25.0, server 30" in shown.getvalue()
    assert InitResult(source="s", body={}, verdict="pass").to_dict()["server"] == {}
