"""Hostile servers on loopback: a long Retry-After, byte-by-byte drips, redirects to private
addresses, DNS rebinding, credentials in the URL. No mocked requests; no traffic leaves the machine.

Every address a test can serve on is loopback, so `public_networks=("127.0.0.1/32",)` makes
127.0.0.1 play a public server; 127.0.0.2 (Linux routes all of 127/8 to lo) plays the private one.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from preflight import check_one, load_policy
from preflight.pipeline import CheckOptions
from preflight.probing.options import RemoteOptions
from preflight.sources import redact_url
from preflight.testing.media_server import Faults, MediaServer
from preflight.verdict import Result

from .conftest import FIXTURES, make_video, run_cli

MEDIA = FIXTURES / "media"
CLIP = "fmt_mp4_h264.mp4"
POLICY = load_policy()
PUBLIC_LOOPBACK = ("127.0.0.1/32",)
SLACK_S = 3.0  # past a deadline: a generous bound that proves "no hang", not a speed
T = TypeVar("T")


@pytest.fixture(scope="module")
def outer_server() -> Iterator[MediaServer]:
    with MediaServer(MEDIA, host="127.0.0.1") as running:
        yield running


@pytest.fixture(scope="module")
def inner_server() -> Iterator[MediaServer]:
    with MediaServer(MEDIA, host="127.0.0.2") as running:
        yield running


@pytest.fixture
def outer(outer_server: MediaServer) -> MediaServer:
    outer_server.faults = Faults()
    outer_server.reset_log()
    return outer_server


@pytest.fixture
def inner(inner_server: MediaServer) -> MediaServer:
    inner_server.faults = Faults()
    inner_server.reset_log()
    return inner_server


def _options(*, allow_private: bool = False, **remote: Any) -> CheckOptions:
    settings: dict[str, Any] = {
        "connect_timeout_s": 5,
        "read_timeout_s": 5,
        "public_networks": PUBLIC_LOOPBACK,
        **remote,
    }
    return CheckOptions(allow_private_urls=allow_private, remote=RemoteOptions(**settings))


def _within(seconds: float, call: Callable[[], T]) -> T:
    """Run `call` on a daemon thread; fail (instead of hanging the suite) if it takes longer."""
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if errors:
        raise errors[0]
    return box[0]


def _deadline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "preflight-deadline"]


# -- B.6 Retry-After ---------------------------------------------------------------------------


def test_a_long_retry_after_is_the_answer_not_a_sleep(outer: MediaServer) -> None:
    outer.faults = Faults(status=503, retry_after="100000")
    result = _within(30, lambda: check_one(outer.url(CLIP), POLICY, options=_options()))
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "http_status"
    assert "100000" in result.error.message and "503" in result.error.message
    assert len(outer.requests) == 1  # no retry was waited for


def test_cli_answers_a_long_retry_after_at_once(outer: MediaServer) -> None:
    outer.faults = Faults(status=503, retry_after="100000")
    done = run_cli("check", "--json", "--allow-private-urls", outer.url(CLIP), timeout=30)
    assert done.returncode == 3, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["kind"] == "http_status" and "Retry-After" not in done.stderr
    assert "100000" in result["error"]["message"]


def test_a_short_retry_after_is_waited_for(outer: MediaServer) -> None:
    outer.faults = Faults(fail_first=1, status=503, retry_after="1")
    result = check_one(outer.url(CLIP), POLICY, options=_options())
    assert result.verdict == "pass", result.error
    assert [r.status for r in outer.requests] == [503, 206]


def test_a_retry_after_past_the_deadline_is_not_waited_for(outer: MediaServer) -> None:
    # 3 s is under the 5 s cap but past what is left of a 1 s deadline.
    outer.faults = Faults(fail_first=1, status=503, retry_after="3")
    result = _within(
        1 + SLACK_S, lambda: check_one(outer.url(CLIP), POLICY, options=_options(deadline_s=1))
    )
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "http_status" and "3 s" in result.error.message
    assert len(outer.requests) == 1


# -- B.7 one deadline per source ---------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [Faults(drip_headers_s=0.05), Faults(drip_body_s=0.02)],
    ids=["drip-headers", "drip-body"],
)
def test_a_drip_ends_in_timeout_at_the_deadline(outer: MediaServer, faults: Faults) -> None:
    # One byte every 20-50 ms never trips a 5 s read timeout; only the 1.5 s deadline ends it.
    outer.faults = faults
    options = _options(deadline_s=1.5)
    started = time.monotonic()
    result = _within(1.5 + SLACK_S, lambda: check_one(outer.url(CLIP), POLICY, options=options))
    assert time.monotonic() - started < 1.5 + SLACK_S
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "timeout"
    assert "1.5 s deadline" in result.error.message
    assert _deadline_threads() == []  # the watchdog is gone with its probe


def test_cli_deadline_ends_a_drip_as_timeout(outer: MediaServer) -> None:
    outer.faults = Faults(drip_body_s=0.02)
    done = run_cli(
        "check", "--json", "--allow-private-urls", "--deadline", "1.5", outer.url(CLIP), timeout=30
    )
    assert done.returncode == 3, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["kind"] == "timeout" and "1.5 s deadline" in result["error"]["message"]


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_cli_refuses_a_deadline_that_is_not_a_positive_number(value: str) -> None:
    done = run_cli("check", "--deadline", value, "x.mp4", timeout=30)
    assert done.returncode == 2 and "--deadline" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def moov_far(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file whose moov lies past the first read, so the probe needs further Range requests."""
    out = tmp_path_factory.mktemp("far") / "far.mp4"
    make_video(ffmpeg, out, "testsrc2=size=640x360:rate=30:duration=2", "-b:v", "4M")
    return out


def test_the_deadline_covers_the_later_range_requests(moov_far: Path) -> None:
    assert moov_far.stat().st_size > 256 * 1024
    with MediaServer(moov_far.parent) as server:
        healthy = check_one(server.url(moov_far.name), POLICY, options=_options())
        assert healthy.error is None and healthy.facts is not None
        assert len(server.requests) >= 2  # the test needs more than the first request
        server.reset_log()
        server.faults = Faults(latency_s=0.7)
        options = _options(deadline_s=1.0)
        result = _within(
            1 + SLACK_S, lambda: check_one(server.url(moov_far.name), POLICY, options=options)
        )
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "timeout"
    # The first read arrived whole: the deadline ended a later Range request.
    assert server.requests[0].body_bytes == 64 * 1024


# -- C.8 redirects are judged before anything connects -----------------------------------------


def test_a_redirect_to_a_private_address_is_refused_unconnected(
    outer: MediaServer, inner: MediaServer
) -> None:
    hop = inner.url(CLIP)
    outer.faults = Faults(redirect_to=hop)
    result = check_one(outer.url(CLIP), POLICY, options=_options())
    assert result.verdict == "reject" and result.facts is None
    (violation,) = result.violations
    assert violation.rule == "url.public"
    assert hop in violation.message and "127.0.0.2" in violation.message
    assert inner.connections == 0  # judged, refused, never connected to
    assert result.remote is not None and result.remote.transfer.requests == 1


def test_allow_private_urls_still_follows_a_private_hop(
    outer: MediaServer, inner: MediaServer
) -> None:
    hop = inner.url(CLIP)
    outer.faults = Faults(redirect_to=hop)
    result = check_one(outer.url(CLIP), POLICY, options=_options(allow_private=True))
    assert result.verdict == "pass", result.error
    assert [w.rule for w in result.warnings if w.rule == "url.public"] == ["url.public"]
    assert any(hop in w.message for w in result.warnings)
    assert len(inner.requests) >= 1 and result.remote is not None
    assert result.remote.final_url == hop


def test_hops_warn_once_per_private_address(outer: MediaServer, inner: MediaServer) -> None:
    loose = CheckOptions(allow_private_urls=True)  # 127.0.0.1 private too, as by default
    outer.faults = Faults(redirects=3)  # three hops on the same host: one warning, not four
    same = check_one(outer.url(CLIP), POLICY, options=loose)
    assert [w.actual for w in same.warnings if w.rule == "url.public"] == ["127.0.0.1"]
    outer.faults = Faults(redirect_to=inner.url(CLIP))
    other = check_one(outer.url(CLIP), POLICY, options=loose)
    assert [w.actual for w in other.warnings if w.rule == "url.public"] == [
        "127.0.0.1",
        "127.0.0.2",
    ]


def test_a_redirect_to_the_metadata_address_is_refused(outer: MediaServer) -> None:
    # Judged from the address alone: nothing connects, so nothing leaves the machine.
    hop = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    outer.faults = Faults(redirect_to=hop)
    result = check_one(outer.url(CLIP), POLICY, options=_options())
    assert result.verdict == "reject"
    (violation,) = result.violations
    assert violation.rule == "url.public" and violation.actual == "169.254.169.254"
    assert hop in violation.message and "did not connect" in violation.message


def test_cli_refuses_a_redirect_from_loopback_to_another_private_address(
    outer: MediaServer, inner: MediaServer
) -> None:
    # Without injection: the URL named (127.0.0.1) is private, so it is refused like a hop,
    # before any connection; the hop its server would have chosen (127.0.0.2) is never learnt.
    outer.faults = Faults(redirect_to=inner.url(CLIP))
    done = run_cli("check", "--json", outer.url(CLIP))
    assert done.returncode == 1, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    messages = [v["message"] for v in result["violations"] if v["rule"] == "url.public"]
    assert len(messages) == 1 and "did not connect" in messages[0]
    assert outer.connections == 0 and inner.connections == 0


@pytest.mark.parametrize(
    ("hop", "rule"),
    [
        ("file:///etc/passwd", "url.scheme"),
        ("http://user:hop-secret@127.0.0.2:9/x.mp4", "url.credentials"),
        ("https:///x.mp4", "url.host"),
    ],
)
def test_a_hop_that_cannot_be_fetched_is_refused(outer: MediaServer, hop: str, rule: str) -> None:
    outer.faults = Faults(redirect_to=hop)
    result = check_one(outer.url(CLIP), POLICY, options=_options())
    assert result.verdict == "reject"
    assert [v.rule for v in result.violations] == [rule]
    assert redact_url(hop) in result.violations[0].message
    assert "hop-secret" not in json.dumps(result.to_dict())


def test_dns_is_asked_once_and_the_judged_address_is_the_one_connected(
    outer: MediaServer,
) -> None:
    # DNS rebinding: the first answer is judged public, a second one would point elsewhere.
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return next(answers)

    with MediaServer(MEDIA, host="127.0.0.2", port=outer.port) as rebound:
        url = f"http://media.example:{outer.port}/{CLIP}"
        result = check_one(url, POLICY, options=_options(resolve=resolve))
        assert rebound.connections == 0
    assert result.verdict == "pass", (result.error, result.violations)
    assert not any(w.rule == "url.public" for w in result.warnings)
    assert asked == ["media.example"]
    assert outer.requests and all(r.status == 206 for r in outer.requests)


# -- D.11 credentials in the URL, and URLs without a host --------------------------------------


def test_credentials_in_the_url_are_a_reject_never_shown_nor_sent(outer: MediaServer) -> None:
    url = outer.url(CLIP).replace("http://", "http://alice:s3cret-pw@")
    result = check_one(url, POLICY, options=_options(allow_private=True))
    assert result.verdict == "reject"
    assert "url.credentials" in [v.rule for v in result.violations]
    assert result.source == outer.url(CLIP).replace("http://", "http://***@")
    assert "s3cret" not in json.dumps(result.to_dict()) and "alice" not in result.source
    assert outer.connections == 0


@pytest.mark.parametrize("form", [["--json"], ["--jsonl"], []], ids=["json", "jsonl", "human"])
def test_cli_never_prints_credentials(outer: MediaServer, form: list[str]) -> None:
    url = outer.url(CLIP).replace("http://", "http://alice:s3cret-pw@")
    done = run_cli("check", *form, "--allow-private-urls", url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "url.credentials" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "url", ["http:///clip.mp4", "https://:443/clip.mp4", "http://host:99999/x", "http://[::1/x"]
)
def test_a_url_without_a_usable_host_is_a_reject_not_a_raise(url: str) -> None:
    result = check_one(url, POLICY)
    assert isinstance(result, Result) and result.verdict == "reject"
    assert [v.rule for v in result.violations] == ["url.host"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@cdn.example/a.mp4", "https://***@cdn.example/a.mp4"),
        ("https://token@cdn.example/a.mp4?x=1", "https://***@cdn.example/a.mp4?x=1"),
        ("http://u:p@ss@host:8/a", "http://***@host:8/a"),
        ("https://cdn.example/@user/a.mp4", "https://cdn.example/@user/a.mp4"),
        (
            "https://cdn.example/a.mp4?next=http://u:p@x",
            "https://cdn.example/a.mp4?next=http://u:p@x",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- https: the connection goes to the judged address, TLS still checks the host name ----------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for media.example (its own CA), made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=media.example"]
    command += ["-addext", "subjectAltName=DNS:media.example"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.parametrize(
    ("name", "verdict"), [("media.example", "pass"), ("other.example", "error")]
)
def test_https_to_a_pinned_address_still_verifies_the_host_name(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, name: str, verdict: str
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with MediaServer(MEDIA, tls=context) as server:
        url = f"https://{name}:{server.port}/{CLIP}"
        options = _options(resolve=lambda _host: ["127.0.0.1"])
        result = check_one(url, POLICY, options=options)
    assert result.verdict == verdict, (result.error, result.violations)
    if verdict == "error":  # the certificate names media.example, not the host asked for
        assert result.error is not None and "TLS" in result.error.message
    else:
        assert not any(w.rule == "url.insecure" for w in result.warnings)
