"""The network around `check` under attack or strain (issue 21): a private URL named by the user
is refused before any connection, and a read timeout is called one. Real loopback servers that
count what reaches them; no mocked requests.

127.0.0.1 plays the public server (`public_networks`), 127.0.0.2 the private one (Linux routes
all of 127/8 to lo).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import preflight
from preflight import check_one, load_policy
from preflight.pipeline import CheckOptions
from preflight.probing.options import RemoteOptions
from preflight.testing.media_server import Faults, MediaServer

from .conftest import FIXTURES, run_cli

MEDIA = FIXTURES / "media"
CLIP = "fmt_mp4_h264.mp4"
POLICY = load_policy()
PUBLIC_LOOPBACK = ("127.0.0.1/32",)


@pytest.fixture(scope="module")
def private_server() -> Iterator[MediaServer]:
    with MediaServer(MEDIA, host="127.0.0.2") as running:
        yield running


@pytest.fixture
def private(private_server: MediaServer) -> MediaServer:
    private_server.faults = Faults()
    private_server.reset_log()
    return private_server


def _options(*, allow_private: bool = False, **remote: Any) -> CheckOptions:
    settings: dict[str, Any] = {"public_networks": PUBLIC_LOOPBACK, **remote}
    return CheckOptions(allow_private_urls=allow_private, remote=RemoteOptions(**settings))


# -- item 1: the URL the user names is judged like a redirect hop -------------------------------


def test_check_one_never_connects_to_a_private_url(private: MediaServer) -> None:
    url = private.url(CLIP)
    result = check_one(url, POLICY, options=_options())
    assert result.verdict == "reject" and result.facts is None and result.remote is None
    assert [v.rule for v in result.violations] == ["url.public"]
    assert "did not connect" in result.violations[0].message
    assert private.connections == 0 and private.requests == []  # not a byte, not a SYN-ACK


def test_the_library_batch_never_connects_to_a_private_url(private: MediaServer) -> None:
    urls = [private.url(CLIP), f"{private.url(CLIP)}?again=1"]
    results = preflight.check(urls, POLICY, options=_options())
    assert [r.verdict for r in results] == ["reject", "reject"]
    assert private.connections == 0


def test_allow_private_urls_does_connect(private: MediaServer) -> None:
    # The same server counts connections: the zero above is the gate's, not a deaf server's.
    result = check_one(private.url(CLIP), POLICY, options=_options(allow_private=True))
    assert result.verdict == "pass", result.error
    assert private.connections >= 1 and private.bytes_sent > 0


@pytest.mark.parametrize("form", [["--json"], []], ids=["json", "human"])
def test_cli_never_connects_to_a_private_url(private: MediaServer, form: list[str]) -> None:
    done = run_cli("check", *form, private.url(CLIP), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "url.public" in done.stdout and "did not connect" in done.stdout
    assert private.connections == 0


# -- item 9: a read timeout is reported as one ---------------------------------------------------


def test_a_server_that_accepts_and_says_nothing_is_a_read_timeout(private: MediaServer) -> None:
    private.faults = Faults(latency_s=30)  # connected, then silence (ended by the server's stop)
    options = _options(allow_private=True, read_timeout_s=0.5, deadline_s=20)
    result = check_one(private.url(CLIP), POLICY, options=options)
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "timeout"
    assert "read timeout" in result.error.message
    assert "could not connect" not in result.error.message
    assert "deadline" not in result.error.message
    assert private.connections == 1  # it did connect: saying otherwise sends the user astray


def test_cli_reports_a_read_timeout_as_one(private: MediaServer) -> None:
    private.faults = Faults(latency_s=30)
    done = run_cli(
        "check", "--json", "--allow-private-urls", "--read-timeout", "0.5", private.url(CLIP),
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["kind"] == "timeout"
    assert "read timeout" in result["error"]["message"]
    assert "could not connect" not in result["error"]["message"]
