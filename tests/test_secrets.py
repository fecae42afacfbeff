"""Secrets never leave: a bad key is refused before anything is recorded or sent, a key the server
echoes back in any field or encoding is redacted everywhere, and URL userinfo is never kept.

The real CLI against the loopback stand-in API; the ledger's raw bytes (WAL included) are grepped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from preflight.ledger import Ledger
from preflight.testing import ROUTE, Fault, Sandbox
from preflight.testing.answers import ECHO_FORMS, encode_echo
from preflight.testing.media_server import MediaServer

from .conftest import FIXTURES, init_env, preflight_script

KEY = "sk-test/SECRET+7f3a9c1e"  # a '/' and a '+': JSON and URL encodings both change them
IDS = ("--video-id", "784912347344945152", "--task-id", "7849")


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer(FIXTURES / "media") as server:
        yield server


@pytest.fixture
def api() -> Iterator[Sandbox]:
    with Sandbox(key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
def env(api: Sandbox, tmp_path: Path) -> dict[str, str]:
    return init_env(api.base_url, KEY, tmp_path)


def init(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [preflight_script(), "init", "--allow-private-urls", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def ledger_bytes(env: dict[str, str]) -> bytes:
    """The ledger file and its -wal and -shm companions, as raw bytes."""
    ledger = Path(env["PREFLIGHT_LEDGER"])
    return b"".join(p.read_bytes() for p in sorted(ledger.parent.glob(ledger.name + "*")))


def attempts(env: dict[str, str]) -> list[object]:
    path = Path(env["PREFLIGHT_LEDGER"])
    if not path.exists():
        return []
    with Ledger(path) as ledger:
        return list(ledger.attempts())


def posts(api: Sandbox) -> int:
    return sum(1 for r in api.requests if r.path.startswith(ROUTE))


# D.9 --------------------------------------------------------------------------------------------

BAD_KEYS = {
    "crlf": "sk-good\r\nX-Injected: 1",
    "lf": "sk-first\nsk-second",
    "tab": "sk-left\tright",
    "non_latin1": "sk-ключ-1234",
    "latin1_only": "sk-caf\u00e9-1234",
    "control": "sk-bell\x07-1234",
}


@pytest.mark.parametrize("name", sorted(BAD_KEYS))
def test_a_bad_key_in_the_environment_is_a_usage_error_before_any_row(
    env: dict[str, str], api: Sandbox, name: str
) -> None:
    bad = BAD_KEYS[name]
    done = init({**env, "COMETAPI_KEY": bad}, *IDS)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "COMETAPI_KEY" in done.stderr
    for part in bad.removeprefix("sk-").split():
        assert part not in done.stderr  # no piece of the key
    assert attempts(env) == [] and posts(api) == 0


def test_a_key_file_with_two_lines_is_refused_the_same_way(
    env: dict[str, str], api: Sandbox, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-first-line\nsk-second-line\n")
    key_file.chmod(0o600)
    nokey = {k: v for k, v in env.items() if k != "COMETAPI_KEY"}
    done = init(nokey, *IDS, "--api-key-file", str(key_file))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "line break" in done.stderr
    assert "first-line" not in done.stderr and "second-line" not in done.stderr
    assert attempts(env) == [] and posts(api) == 0


def test_the_library_refuses_a_bad_key_too() -> None:
    from preflight.errors import UsageError
    from preflight.session.credentials import ApiKey

    with pytest.raises(UsageError) as caught:
        ApiKey("sk-abc\r\ndef")
    assert "abc" not in str(caught.value) and "def" not in str(caught.value)
    assert ApiKey(KEY).header() == f"Bearer {KEY}"


# D.10 -------------------------------------------------------------------------------------------

ECHOES = [
    *[(place, form, False) for place in ("code", "request_id", "message") for form in ECHO_FORMS],
    *[(place, form, True) for place in ("param", "type", "code", "message") for form in ECHO_FORMS],
    *[("header", form, False) for form in ECHO_FORMS],
    *[("body", form, False) for form in ECHO_FORMS],
]


def _echo_fault(place: str, form: str, comet: bool) -> Fault:
    # 400: terminal, so one POST; the body place answers HTML, the others JSON.
    code = None if comet or place == "body" else 1201
    return Fault(status=400, code=code, comet_error=comet, echo=place, echo_as=form)


@pytest.mark.parametrize(("place", "form", "comet"), ECHOES)
def test_the_echo_fault_really_sends_the_key(
    api: Sandbox, place: str, form: str, comet: bool
) -> None:
    # Without this the test below could pass because nothing was ever echoed.
    api.faults.append(_echo_fault(place, form, comet))
    response = requests.post(
        api.url,
        json={"video_id": "1", "task_id": "2"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    raw = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    assert encode_echo(KEY, form) in raw


@pytest.mark.parametrize(("place", "form", "comet"), ECHOES)
def test_an_echoed_key_is_redacted_everywhere(
    env: dict[str, str], api: Sandbox, place: str, form: str, comet: bool
) -> None:
    api.faults.append(_echo_fault(place, form, comet))
    done = init(env, "--json", "--debug", *IDS)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"]["kind"] in ("invalid", "protocol")
    assert "preflight debug: <- HTTP" in done.stderr  # the trace ran, so it was checked too
    stored = ledger_bytes(env)
    assert [a.state for a in attempts(env)] == ["failed"]  # type: ignore[attr-defined]
    for shown in (KEY, *(encode_echo(KEY, f) for f in ECHO_FORMS)):
        assert shown not in done.stdout and shown not in done.stderr, shown
        assert shown.encode() not in stored, shown


def test_redaction_leaves_other_text_alone() -> None:
    from preflight.session.credentials import ApiKey

    key = ApiKey(KEY)
    text = 'video_url "https://example.com/a.mp4" is not reachable: sk-test/OTHER'
    assert key.redact(text) == text
    assert key.scrub({"a": [1, f"x{KEY}y", {KEY: None}]}) == {"a": [1, "x***y", {"***": None}]}


# D.11 -------------------------------------------------------------------------------------------

PASSWORD = "pa55-w0rd-XYZ"


@pytest.mark.parametrize(
    "shape",
    [
        "http://user:{pw}@{host}",
        "https://user:{pw}@{host}",
        "ftp://user:{pw}@{host}",
        "http://{pw}@{host}",
    ],
)
def test_userinfo_in_the_api_base_is_refused_without_repeating_it(
    env: dict[str, str], api: Sandbox, shape: str
) -> None:
    base = shape.format(pw=PASSWORD, host=api.base_url.split("://")[1])
    for run_env, args in (
        (env, ("--api-base", base)),
        ({**env, "PREFLIGHT_API_BASE": base}, ()),
    ):
        done = init(run_env, "--debug", "--json", *IDS, *args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "user:password@" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr
    assert attempts(env) == [] and posts(api) == 0


def test_a_malformed_api_base_is_one_line(env: dict[str, str], api: Sandbox) -> None:
    done = init(env, *IDS, "--api-base", "http://[::1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and posts(api) == 0


def test_userinfo_in_a_video_url_is_never_sent_printed_or_stored(
    env: dict[str, str], api: Sandbox, media: MediaServer
) -> None:
    plain = media.url("fmt_mp4_h264.mp4")
    scheme, rest = plain.split("://", 1)
    with_userinfo = f"{scheme}://someone:{PASSWORD}@{rest}"
    # The check's url.credentials rule refuses it (exit 1) before anything is sent; no password
    # may be seen or kept on the way.
    done = init(env, "--json", "--debug", "--video-url", with_userinfo)
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    shown = f"{scheme}://***@{rest}"
    assert out["check"]["source"] == shown
    assert [v["rule"] for v in out["check"]["violations"]] == ["url.credentials"]
    listed = subprocess.run(
        [preflight_script(), "sessions", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for text in (done.stdout, done.stderr, listed.stdout, listed.stderr):
        assert PASSWORD not in text and "someone" not in text
    stored = ledger_bytes(env)
    assert PASSWORD.encode() not in stored and b"someone" not in stored
    assert api.requests == []
