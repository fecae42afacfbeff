"""The loopback media server: Range semantics, keep-alive, the request log, and every fault.

Real HTTP over 127.0.0.1 with `requests` (and http.client where requests would tidy the path).
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from preflight.errors import UsageError
from preflight.testing.media_server import Faults, LoggedRequest, MediaServer

ROOT = Path(__file__).resolve().parent.parent
SIZE = 1024 * 1024
DATA = random.Random(1).randbytes(SIZE)
TIMEOUT = 10  # seconds; generous, only there so a broken server fails a test instead of hanging


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "a.mp4").write_bytes(DATA)
    (root / "clip.MOV").write_bytes(DATA[:1000])
    (root / "blob.bin").write_bytes(DATA[:10])
    (root / "empty.mp4").write_bytes(b"")
    (root / "sub dir").mkdir()
    (root / "sub dir" / "b c.m4v").write_bytes(DATA[:2000])
    (tmp_path / "secret.txt").write_text("outside the root")
    return root


@pytest.fixture
def server(media: Path) -> Iterator[MediaServer]:
    with MediaServer(media) as running:
        yield running


def get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT, **kwargs)


def raw_get(server: MediaServer, target: str) -> int:
    """The status for a request target sent verbatim (requests would normalise `..` away)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        connection.request("GET", target)
        return connection.getresponse().status
    finally:
        connection.close()


def test_full_get_serves_the_file_and_logs_it(server: MediaServer) -> None:
    response = get(server.url("a.mp4"))
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    assert server.requests == [
        LoggedRequest("GET", "/a.mp4", None, 200, SIZE, server.requests[0].client_port)
    ]
    assert server.bytes_sent == SIZE


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=10-10", 10, 10),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=-500", SIZE - 500, SIZE - 1),
        ("bytes=1048000-9999999", 1048000, SIZE - 1),  # last byte past the end is clamped
        ("bytes=-9999999", 0, SIZE - 1),  # a suffix longer than the file is the whole file
        ("bytes=100-199, 500-599", 100, 199),  # several ranges: the first one is served
        ("Bytes = 70000 - 200000", 70000, 200000),  # unit is case-insensitive, spaces allowed
    ],
)
def test_range_forms_return_the_file_slice(
    server: MediaServer, header: str, first: int, last: int
) -> None:
    response = get(server.url("a.mp4"), headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert response.headers["Content-Length"] == str(last - first + 1)
    assert server.requests[0].range == header
    assert server.bytes_sent == last - first + 1


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=9-3", "bytes=-", "bytes"])
def test_a_range_we_may_ignore_gets_the_whole_file(server: MediaServer, header: str) -> None:
    response = get(server.url("a.mp4"), headers={"Range": header})
    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("a.mp4", f"bytes={SIZE}-"),
        ("a.mp4", f"bytes={SIZE + 5}-{SIZE + 9}"),
        ("a.mp4", "bytes=-0"),
        ("empty.mp4", "bytes=0-"),
        ("empty.mp4", "bytes=-5"),
    ],
)
def test_unsatisfiable_range_is_416(server: MediaServer, name: str, header: str) -> None:
    size = len(DATA) if name == "a.mp4" else 0
    response = get(server.url(name), headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert server.requests[0].status == 416


def test_head_sends_headers_only(server: MediaServer) -> None:
    response = requests.head(server.url("a.mp4"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.content == b""
    # RFC 9110 defines Range for GET only: a HEAD with Range answers as a plain GET would.
    ranged = requests.head(server.url("a.mp4"), headers={"Range": "bytes=0-9"}, timeout=TIMEOUT)
    assert ranged.status_code == 200
    assert [(r.method, r.status, r.body_bytes) for r in server.requests] == [("HEAD", 200, 0)] * 2


def test_keep_alive_reuses_one_connection(server: MediaServer) -> None:
    with requests.Session() as session:
        for index in range(5):
            first = index * 100_000
            response = session.get(
                server.url("a.mp4"), headers={"Range": f"bytes={first}-{first + 99}"}, timeout=10
            )
            assert response.status_code == 206
            assert response.content == DATA[first : first + 100]
    log = server.requests
    assert [r.status for r in log] == [206] * 5
    assert len({r.client_port for r in log}) == 1


def test_content_types(server: MediaServer) -> None:
    assert get(server.url("clip.MOV")).headers["Content-Type"] == "video/quicktime"
    assert get(server.url("blob.bin")).headers["Content-Type"] == "application/octet-stream"
    nested = get(server.url("sub dir/b c.m4v"))
    assert (nested.status_code, nested.headers["Content-Type"]) == (200, "video/mp4")
    assert nested.content == DATA[:2000]
    server.faults = Faults(content_type="text/plain")
    assert get(server.url("a.mp4")).headers["Content-Type"] == "text/plain"


def test_etag_can_be_turned_off(server: MediaServer) -> None:
    server.faults = Faults(etag=False)
    headers = get(server.url("blob.bin")).headers
    assert "ETag" not in headers
    assert "Last-Modified" not in headers


def test_missing_file_and_folder_are_404(server: MediaServer) -> None:
    assert get(server.url("nope.mp4")).status_code == 404
    assert get(server.url("sub dir")).status_code == 404
    assert [r.status for r in server.requests] == [404, 404]


@pytest.mark.parametrize(
    "target",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/sub%20dir/../../secret.txt"],
)
def test_path_traversal_is_404(server: MediaServer, target: str) -> None:
    assert raw_get(server, target) == 404
    assert raw_get(server, "/../media/a.mp4") == 200  # `..` that stays inside the root is fine


def test_symlink_out_of_the_root_is_404(server: MediaServer, media: Path) -> None:
    (media / "link.txt").symlink_to(media.parent / "secret.txt")
    assert get(server.url("link.txt")).status_code == 404


def test_query_string_is_ignored_for_the_lookup(server: MediaServer) -> None:
    response = get(server.url("a.mp4") + "?X-Amz-Expires=3600&X-Amz-Signature=abc%2Fdef")
    assert response.status_code == 200
    assert response.content == DATA
    assert server.requests[0].path == "/a.mp4?X-Amz-Expires=3600&X-Amz-Signature=abc%2Fdef"


def test_no_range_answers_200_with_the_whole_body(server: MediaServer) -> None:
    server.faults = Faults(no_range=True)
    response = get(server.url("a.mp4"), headers={"Range": "bytes=0-99"})
    assert response.status_code == 200
    assert response.content == DATA
    assert "Accept-Ranges" not in response.headers
    assert "Content-Range" not in response.headers


def test_wrong_length_short_misframes_and_the_next_request_still_works(
    server: MediaServer,
) -> None:
    server.faults = Faults(wrong_length=-10)
    with requests.Session() as session:
        short = session.get(server.url("a.mp4"), timeout=TIMEOUT)
        assert short.headers["Content-Length"] == str(SIZE - 10)
        assert short.content == DATA[:-10]
        server.faults = Faults()
        # The server closed the misframed connection, so its leftover bytes cannot leak here.
        after = session.get(server.url("a.mp4"), headers={"Range": "bytes=0-99"}, timeout=10)
        assert after.content == DATA[:100]
    assert server.requests[0].body_bytes == SIZE  # the body itself is unchanged
    # requests sees the leftover bytes and reconnects, so look at the socket: the server itself
    # must close a misframed connection rather than leave it open for reuse.
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
        server.faults = Faults(wrong_length=-10)
        raw.sendall(b"GET /blob.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b"".join(iter(lambda: raw.recv(65536), b""))
    assert received.endswith(b"\r\n\r\n" + DATA[:10])


def test_wrong_length_long_leaves_the_client_short(server: MediaServer) -> None:
    server.faults = Faults(wrong_length=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="10 more expected"):
        get(server.url("a.mp4"), headers={"Range": "bytes=0-999"})


def test_cut_body_at_closes_early(server: MediaServer) -> None:
    cut = 100_000  # past the first 64 KiB chunk, so the cut lands inside a chunk
    server.faults = Faults(cut_body_at=cut)
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="100000 bytes read"):
        get(server.url("a.mp4"))
    # At the socket: the full Content-Length is promised, then the connection closes early.
    # A short timeout: the server must close at once, not when its idle keep-alive times out.
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
        raw.sendall(b"GET /a.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b"".join(iter(lambda: raw.recv(65536), b""))
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {SIZE}".encode() in head
    assert body == DATA[:cut]
    assert [r.body_bytes for r in server.requests] == [cut, cut]


def test_stall_after_headers_trips_the_read_timeout(server: MediaServer) -> None:
    server.faults = Faults(stall_s=30)
    started = time.monotonic()
    # requests reports a read timeout in the body as ConnectionError wrapping urllib3's
    # ReadTimeoutError; only a timeout before the headers becomes requests' ReadTimeout.
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        requests.get(server.url("a.mp4"), timeout=0.5)
    assert time.monotonic() - started < 5
    assert (server.requests[0].status, server.requests[0].body_bytes) == (200, 0)


def test_latency_before_headers_is_a_read_timeout(server: MediaServer) -> None:
    server.faults = Faults(latency_s=30)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.url("a.mp4"), timeout=0.5)
    assert time.monotonic() - started < 5


def test_latency_delays_each_answer(server: MediaServer) -> None:
    server.faults = Faults(latency_s=0.05)
    started = time.monotonic()
    assert get(server.url("blob.bin")).status_code == 200
    assert time.monotonic() - started >= 0.05


@pytest.mark.parametrize("status", [500, 503, 404])
def test_status_answers_every_request(server: MediaServer, status: int) -> None:
    server.faults = Faults(status=status)
    for _ in range(3):
        response = get(server.url("a.mp4"), headers={"Range": "bytes=0-9"})
        assert response.status_code == status
        assert str(status).encode() in response.content
    head = requests.head(server.url("a.mp4"), timeout=TIMEOUT)
    assert (head.status_code, head.content) == (status, b"")
    assert [r.status for r in server.requests] == [status] * 4


@pytest.mark.parametrize(("status", "expected"), [(None, 503), (500, 500)])
def test_fail_first_then_normal(server: MediaServer, status: int | None, expected: int) -> None:
    server.faults = Faults(fail_first=2, status=status)
    codes = [get(server.url("a.mp4"), headers={"Range": "bytes=0-9"}).status_code for _ in "abc"]
    assert codes == [expected, expected, 206]


def test_redirects_end_at_the_file(server: MediaServer) -> None:
    server.faults = Faults(redirects=3)
    response = get(server.url("a.mp4") + "?sig=x")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.url.endswith("hop=3")
    assert "sig=x" in response.url  # other query parameters survive each hop
    assert [r.status for r in server.requests] == [302, 302, 302, 200]


def test_redirect_loop_never_ends(server: MediaServer) -> None:
    server.faults = Faults(redirect_loop=True)
    with requests.Session() as session:
        session.max_redirects = 5
        with pytest.raises(requests.exceptions.TooManyRedirects):
            session.get(server.url("a.mp4"), timeout=TIMEOUT)
    log = server.requests
    assert [r.status for r in log] == [302] * 6
    assert log[-1].path == "/a.mp4?n=5"


def test_require_auth(server: MediaServer) -> None:
    server.faults = Faults(require_auth=True)
    refused = get(server.url("a.mp4"))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert get(server.url("a.mp4"), headers={"Authorization": "Bearer nope"}).status_code == 401
    allowed = get(server.url("a.mp4"), headers={"Authorization": "Bearer letmein"})
    assert allowed.status_code == 200


def test_reset_log_and_bytes_sent(server: MediaServer) -> None:
    get(server.url("a.mp4"), headers={"Range": "bytes=0-99"})
    get(server.url("blob.bin"))
    assert server.bytes_sent == 110
    server.reset_log()
    assert server.requests == []
    assert server.bytes_sent == 0


def test_client_hanging_up_is_routine_and_nothing_is_counted_unsent(server: MediaServer) -> None:
    server.faults = Faults(stall_s=0.2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        # Linger 0: close with a reset, as a range reader that has read enough may do.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.sendall(b"GET /a.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(65536).startswith(b"HTTP/1.1 200")
    time.sleep(1)  # the stall ends, the first chunk meets the reset
    assert (server.requests[0].status, server.requests[0].body_bytes) == (200, 0)
    server.faults = Faults()
    assert get(server.url("blob.bin")).content == DATA[:10]  # and the server keeps serving


def _handler_threads() -> int:
    return sum("process_request_thread" in thread.name for thread in threading.enumerate())


def test_stop_returns_while_a_request_is_stalled(media: Path) -> None:
    handlers_before = _handler_threads()
    server = MediaServer(media).start()
    idle = requests.Session()  # leaves a keep-alive connection open in the pool
    assert idle.get(server.url("blob.bin"), timeout=TIMEOUT).status_code == 200
    server.faults = Faults(stall_s=60)
    outcome: list[BaseException | None] = []

    def fetch() -> None:
        try:
            requests.get(server.url("a.mp4"), timeout=30).content  # noqa: B018
            outcome.append(None)
        except requests.exceptions.RequestException as error:
            outcome.append(error)

    client = threading.Thread(target=fetch, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while len(server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.requests) == 2, "the stalled request never reached the server"
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    server.stop()  # idempotent
    client.join(5)
    assert not client.is_alive()  # the stalled client was hung up on, not left waiting
    assert outcome and isinstance(outcome[0], requests.exceptions.RequestException)
    deadline = time.monotonic() + 2
    while _handler_threads() > handlers_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _handler_threads() <= handlers_before  # the stalled handler woke up and ended
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url("a.mp4"), timeout=2)
    # The idle keep-alive connection was closed too: no handler outlives stop() to answer it.
    with idle, pytest.raises(requests.exceptions.ConnectionError):
        idle.get(server.url("blob.bin"), timeout=2)


def test_url_and_base_url(media: Path) -> None:
    with MediaServer(media) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.url("sub dir/b c.m4v") == f"{server.base_url}/sub%20dir/b%20c.m4v"


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        MediaServer(tmp_path / "absent")


def test_cli_serves_until_ctrl_c(media: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "preflight.testing.media_server",
            str(media),
            "--no-range",
            "--latency-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        base_url = child.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        response = get(f"{base_url}/a.mp4", headers={"Range": "bytes=0-9"})
        assert (response.status_code, len(response.content)) == (200, SIZE)  # --no-range
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stderr
    assert stderr == ""  # quiet: no request lines, no traceback on Ctrl-C
