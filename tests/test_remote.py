"""Remote probing against a real loopback HTTP server (testing.MediaServer): no mocked requests.

Same facts from disk and over HTTP, byte and request budgets, and every server misbehaviour.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from preflight import check_one, load_policy
from preflight.pipeline import CheckOptions
from preflight.probing import boxes
from preflight.probing.remote import RemoteOptions
from preflight.testing.media_server import Faults, MediaServer

from .conftest import CORPUS, FIXTURES, make_video, run_cli

MEDIA = FIXTURES / "media"
ROWS: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
POLICY = load_policy()
LOOPBACK = CheckOptions(
    allow_private_urls=True, remote=RemoteOptions(connect_timeout_s=5, read_timeout_s=5)
)


@pytest.fixture(scope="module")
def fixtures_server() -> Iterator[MediaServer]:
    with MediaServer(MEDIA) as server:
        yield server


def _same(local: Any, remote: Any) -> None:
    assert remote.verdict == local.verdict, (remote.error, remote.violations)
    assert [v.rule for v in remote.violations] == [v.rule for v in local.violations]
    url_rules = {"url.insecure", "url.public"}
    assert [w.rule for w in remote.warnings if w.rule not in url_rules] == [
        w.rule for w in local.warnings
    ]
    if local.error is not None:
        assert remote.error is not None and remote.error.kind == local.error.kind
    else:
        assert remote.facts == local.facts


@pytest.mark.parametrize("backend", ["auto", "mediainfo", "ffprobe"])
@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["file"] != "err_empty.mp4"], ids=lambda r: r["file"]
)
def test_fixture_same_from_disk_and_http(
    fixtures_server: MediaServer, row: dict[str, Any], backend: str
) -> None:
    options = CheckOptions(backend=backend, allow_private_urls=True, remote=LOOPBACK.remote)
    local = check_one(MEDIA / row["file"], POLICY, options=options)
    remote = check_one(fixtures_server.url(row["file"]), POLICY, options=options)
    _same(local, remote)
    if remote.remote is not None and remote.facts is not None:
        # The probe never needs more than the file, and on files this small usually all of it.
        assert remote.remote.transfer.bytes <= (MEDIA / row["file"]).stat().st_size


def test_empty_resource_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "zero.mp4").write_bytes(b"")
    with MediaServer(tmp_path) as server:
        result = check_one(server.url("zero.mp4"), POLICY, options=LOOPBACK)
    assert result.verdict == "error"


@pytest.mark.skipif(
    not (CORPUS / "media").exists() and os.environ.get("CI") != "true",
    reason="no corpus (outside CI only; under CI a missing corpus fails)",
)
def test_corpus_same_from_disk_and_http() -> None:
    files = sorted((CORPUS / "media").iterdir())
    with MediaServer(CORPUS / "media") as server:
        for path in files:
            local = check_one(path, POLICY, options=LOOPBACK)
            remote = check_one(server.url(path.name), POLICY, options=LOOPBACK)
            _same(local, remote)


# -- byte and request budgets on large files ------------------------------------------------


def _noise(ffmpeg: str, out: Path, *movflags: str) -> Path:
    """About 50 MB of incompressible video, so mdat dwarfs moov as in real uploads."""
    noise = "nullsrc=s=720x720:r=30:d=2,geq=random(1)*255:128:128"
    return make_video(ffmpeg, out, noise, "-qp", "0", *movflags)


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    return {
        "faststart": _noise(ffmpeg, folder / "faststart.mp4", "-movflags", "+faststart"),
        "moov_at_end": _noise(ffmpeg, folder / "moov_at_end.mp4"),
        "fragmented": _noise(
            ffmpeg,
            folder / "fragmented.mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "-g",
            "10",
        ),
    }


def _box_sizes(path: Path) -> dict[str, int]:
    with path.open("rb") as f:
        top = boxes.walk_top(f, path.stat().st_size)
    sizes: dict[str, int] = {}
    for box in top:
        sizes[box.type] = sizes.get(box.type, 0) + box.size
    return sizes


@pytest.mark.parametrize(
    ("shape", "slack", "max_requests"),
    [("faststart", 128 * 1024, 3), ("moov_at_end", 256 * 1024, 5)],
)
def test_byte_budget(big_files: dict[str, Path], shape: str, slack: int, max_requests: int) -> None:
    path = big_files[shape]
    sizes = _box_sizes(path)
    assert path.stat().st_size > 20 * sizes["moov"]
    with MediaServer(path.parent) as server:
        result = check_one(server.url(path.name), POLICY, options=LOOPBACK)
        sent = server.bytes_sent
    assert result.facts is not None and result.remote is not None
    budget = sizes["moov"] + sizes.get("ftyp", 0) + slack
    assert result.remote.transfer.bytes <= budget
    assert sent <= budget  # what the server wrote, not only what we counted
    assert result.remote.transfer.requests <= max_requests
    assert result.facts == check_one(path, POLICY).facts


def test_fragmented_reads_only_fragment_headers(big_files: dict[str, Path]) -> None:
    path = big_files["fragmented"]
    with MediaServer(path.parent) as server:
        result = check_one(server.url(path.name), POLICY, options=LOOPBACK)
    assert result.facts is not None and result.remote is not None
    assert result.facts.fragmented and result.facts.frame_count == 60
    assert result.facts == check_one(path, POLICY).facts
    assert result.remote.transfer.bytes < path.stat().st_size // 10


# -- servers that misbehave -----------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MediaServer]:
    for row in ROWS:
        if row["file"] in ("fmt_mp4_h264.mp4", "moov_at_end.mp4"):
            (tmp_path / row["file"]).write_bytes((MEDIA / row["file"]).read_bytes())
    with MediaServer(tmp_path) as running:
        yield running


def _check(url: str, **remote: Any) -> Any:
    options = CheckOptions(
        allow_private_urls=True,
        remote=RemoteOptions(**{"connect_timeout_s": 5, "read_timeout_s": 5, **remote}),
    )
    return check_one(url, POLICY, options=options)


def test_no_range_support_reads_the_whole_small_file(server: MediaServer) -> None:
    server.faults = Faults(no_range=True)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "pass" and result.remote.range_supported is False
    assert result.remote.prefix_only is False


def test_no_range_support_with_a_capped_prefix_says_so(server: MediaServer) -> None:
    server.faults = Faults(no_range=True)
    faststart = _check(server.url("fmt_mp4_h264.mp4"), max_prefix_bytes=4096)
    assert faststart.verdict == "pass"
    assert "url.no_range" in {w.rule for w in faststart.warnings}
    at_end = _check(server.url("moov_at_end.mp4"), max_prefix_bytes=1024)
    assert at_end.verdict == "error" and at_end.error.kind == "no_range"
    assert "Range" in at_end.error.message


@pytest.mark.parametrize("wrong_by", [5000, -100])
def test_wrong_content_length_is_a_clear_error(server: MediaServer, wrong_by: int) -> None:
    # urllib3 refuses a body that disagrees with Content-Length: an error naming the cause.
    server.faults = Faults(wrong_length=wrong_by)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "error" and result.error.kind == "network"
    assert "Content-Length" in result.error.message and "\n" not in result.error.message


def test_body_cut_short_is_an_error(server: MediaServer) -> None:
    server.faults = Faults(cut_body_at=100)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "error" and result.error.kind == "network"
    assert "cut short" in result.error.message or "bytes" in result.error.message


def test_stalled_server_times_out(server: MediaServer) -> None:
    server.faults = Faults(stall_s=3)
    result = _check(server.url("moov_at_end.mp4"), read_timeout_s=0.5)
    assert result.verdict == "error" and result.error.kind == "timeout"


def test_redirect_loop_is_an_error(server: MediaServer) -> None:
    server.faults = Faults(redirect_loop=True)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "error" and result.error.kind == "redirects"


def test_redirects_are_followed_and_the_final_url_reported(server: MediaServer) -> None:
    server.faults = Faults(redirects=3)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "pass"
    assert result.remote.final_url.endswith("hop=3")


def test_5xx_is_retried_twice_then_an_error(server: MediaServer) -> None:
    server.faults = Faults(status=503)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "error" and result.error.kind == "http_status"
    assert "503" in result.error.message
    assert len(server.requests) == 3


def test_5xx_then_success(server: MediaServer) -> None:
    server.faults = Faults(fail_first=2, status=502)
    assert _check(server.url("moov_at_end.mp4")).verdict == "pass"


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_client_errors_are_url_rejects_naming_the_status(server: MediaServer, status: int) -> None:
    server.faults = Faults(status=status)
    result = _check(server.url("moov_at_end.mp4"))
    assert result.verdict == "reject"
    (violation,) = [v for v in result.violations if v.rule == "url.status"]
    assert violation.actual == status and str(status) in violation.message


def test_content_type_warning(server: MediaServer) -> None:
    server.faults = Faults(content_type="text/html")
    result = _check(server.url("fmt_mp4_h264.mp4"))
    assert result.verdict == "pass"
    assert "url.content_type" in {w.rule for w in result.warnings}


def test_a_house_policy_silences_url_warnings_too(server: MediaServer, tmp_path: Path) -> None:
    # Issue 11: "disabled" used to reach only the media rules; url.* warnings ignored it.
    server.faults = Faults(content_type="text/html")
    url = server.url("fmt_mp4_h264.mp4")  # plain http on loopback: insecure and private
    loud = _check(url)
    assert {"url.insecure", "url.content_type", "url.public"} <= {w.rule for w in loud.warnings}
    house = tmp_path / "quiet.json"
    house.write_text(
        json.dumps(
            {"extends": "cometapi", "warnings": {"disabled": ["url.insecure", "url.content_type"]}}
        )
    )
    quiet = check_one(url, load_policy(house), options=LOOPBACK)
    assert [w.rule for w in quiet.warnings] == [
        w.rule for w in loud.warnings if w.rule not in ("url.insecure", "url.content_type")
    ]
    assert quiet.verdict == loud.verdict == "pass"


def test_a_status_is_data_for_the_judge_not_an_exception(server: MediaServer) -> None:
    server.faults = Faults(status=404)
    result = _check(server.url("fmt_mp4_h264.mp4"))
    assert result.remote is not None and result.remote.status == 404
    assert result.facts is None and result.error is None
    assert [v.rule for v in result.violations] == ["url.status"]


def _amz(url: str, signed: datetime, expires_s: int) -> str:
    return f"{url}?X-Amz-Date={signed:%Y%m%dT%H%M%SZ}&X-Amz-Expires={expires_s}&X-Amz-Signature=x"


def test_presigned_urls(server: MediaServer) -> None:
    now = datetime.now(timezone.utc)
    fresh = _check(_amz(server.url("fmt_mp4_h264.mp4"), now, 3600))
    assert fresh.verdict == "pass" and not any(w.rule.startswith("url.exp") for w in fresh.warnings)
    soon = _check(_amz(server.url("fmt_mp4_h264.mp4"), now - timedelta(minutes=50), 3600))
    assert "url.expiring" in {w.rule for w in soon.warnings} and soon.verdict == "pass"
    gone = _check(_amz(server.url("fmt_mp4_h264.mp4"), now - timedelta(hours=2), 3600))
    assert gone.verdict == "reject" and "url.expired" in {v.rule for v in gone.violations}


def test_private_addresses_are_rejected_unless_allowed(server: MediaServer) -> None:
    url = server.url("fmt_mp4_h264.mp4")
    strict = check_one(url, POLICY)
    assert strict.verdict == "reject"
    assert [v.rule for v in strict.violations] == ["url.public"]
    # Refused like a redirect hop, before any connection (issue 21): nothing was fetched.
    assert strict.facts is None and strict.remote is None
    loose = _check(url)
    assert loose.verdict == "pass" and "url.public" in {w.rule for w in loose.warnings}


def test_unreachable_and_bad_scheme() -> None:
    refused = _check("http://127.0.0.1:9/clip.mp4")
    assert refused.verdict == "error" and refused.error.kind == "network"
    ftp = check_one("ftp://example.com/clip.mp4", POLICY)
    assert ftp.verdict == "reject" and [v.rule for v in ftp.violations] == ["url.scheme"]


def test_cli_mixes_paths_and_urls(server: MediaServer) -> None:
    local = str(MEDIA / "fmt_mp4_h264.mp4")
    url = server.url("moov_at_end.mp4")
    done = run_cli("check", "--json", "--allow-private-urls", local, url)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = json.loads(done.stdout)["results"]
    assert first["source"] == local and "remote" not in first
    assert second["source"] == url and second["remote"]["final_url"] == url
    assert second["remote"]["requests"] >= 1 and second["remote"]["bytes"] > 0
    text = run_cli("check", "--allow-private-urls", url)
    assert "bytes in 1 request" in text.stdout and text.returncode == 0


def test_a_backend_error_over_a_url_names_the_url_not_a_temp_file() -> None:
    # ffprobe reads a sparse temp copy of the index; its complaint must still name what we read.
    options = CheckOptions(backend="ffprobe", allow_private_urls=True, remote=LOOPBACK.remote)
    with MediaServer(MEDIA) as server:
        url = server.url("err_random.mp4")
        result = check_one(url, POLICY, options=options)
    assert result.verdict == "error" and result.error is not None
    assert url in result.error.message and "/tmp" not in result.error.message
