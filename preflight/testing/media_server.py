"""A loopback HTTP file server with real Range support and faults on demand, for tests and the demo.

It logs every request with the body bytes it wrote, so a test can assert what a remote probe cost.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import UsageError
from .loopback import LoopbackHandler, LoopbackHTTPServer, LoopbackServer, serve_until_interrupt

CHUNK_BYTES = 64 * 1024
AUTH_VALUE = "Bearer letmein"
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".m4a": "video/mp4",
    ".mov": "video/quicktime",
}
_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)


@dataclass(frozen=True)
class Faults:
    """Ways the server misbehaves on purpose; the default is a well-behaved server."""

    latency_s: float = 0.0  # wait before answering each request
    no_range: bool = False  # ignore Range: answer 200 with the whole body
    wrong_length: int = 0  # added to Content-Length of file responses; the body is unchanged
    cut_body_at: int | None = None  # close the connection after this many body bytes
    stall_s: float = 0.0  # send the headers, then wait this long before the body
    status: int | None = None  # answer every GET/HEAD with this status and a small HTML page
    fail_first: int = 0  # answer the first N requests with `status` (503 if None), then normally
    redirect_loop: bool = False  # every path answers 302 to itself with ?n=n+1, endlessly
    redirects: int = 0  # /x answers 302 -> /x?hop=1 -> ... and is served after N hops
    content_type: str | None = None  # overrides the type guessed from the file suffix
    require_auth: bool = False  # 401 unless "Authorization: Bearer letmein"
    etag: bool = True  # send ETag and Last-Modified
    retry_after: str | None = None  # a Retry-After header on the `status`/`fail_first` answers
    redirect_to: str | None = None  # every request answers 302 with this Location (any URL)
    drip_headers_s: float = 0.0  # send the status line and headers one byte per this many seconds
    drip_body_s: float = 0.0  # send file bodies one byte per this many seconds


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server answered it; `body_bytes` counts body bytes given to the socket."""

    method: str
    path: str  # the request target as sent, query string included
    range: str | None  # the Range header as sent
    status: int
    body_bytes: int
    client_port: int = 0  # one port per connection: tells keep-alive reuse from reconnects


@dataclass
class _Entry:
    """The mutable log row of a response in progress; readers get LoggedRequest copies."""

    method: str
    path: str
    range: str | None
    status: int
    client_port: int
    body_bytes: int = 0

    def frozen(self) -> LoggedRequest:
        return LoggedRequest(
            self.method, self.path, self.range, self.status, self.body_bytes, self.client_port
        )


class _RangeNotSatisfiable(Exception):
    """A well-formed byte range that starts past the end of the file (answer 416)."""


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte that a Range header asks of a file of `size` bytes.

    None means a header we may ignore under RFC 9110 (other unit, bad syntax): answer 200.
    """
    unit, equals, specs = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    # Several ranges would need a multipart/byteranges body; we serve the first range alone,
    # which RFC 9110 allows (a 206 may carry a subset of what was asked).
    match = _RANGE_SPEC.fullmatch(specs.split(",")[0])
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # suffix form: the last n bytes
        wanted = int(match[2])
        if wanted == 0 or size == 0:
            raise _RangeNotSatisfiable
        return max(0, size - wanted), size - 1
    first = int(match[1])
    if match[2] and int(match[2]) < first:
        return None
    if first >= size:
        raise _RangeNotSatisfiable
    return first, min(int(match[2]) if match[2] else size - 1, size - 1)


def _content_type(path: Path) -> str:
    return _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def _resolve(root: Path, url_path: str) -> Path | None:
    """The file under `root` that a URL path names, or None (also for any path escaping root)."""
    relative = unquote(url_path).lstrip("/")
    try:
        # resolve() follows symlinks and `..`, so the containment check sees the real target.
        candidate = (root / relative).resolve()
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _query_int(query: dict[str, str], key: str) -> int:
    value = query.get(key, "0")
    return int(value) if value.isascii() and value.isdigit() else 0


class _Handler(LoopbackHandler):
    server_version = "preflight-serve"
    server: LoopbackHTTPServer[MediaServer]
    _entry: _Entry | None = None  # the log row of the response being sent

    def setup(self) -> None:
        super().setup()
        # As web servers do (nginx: tcp_nodelay on): without it, on a kept-alive connection the
        # body's last segment waits for the client's delayed ACK of the headers, ~40 ms a request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        media = self.server.owner
        faults, nth = media._next_request()
        self._entry = None
        if faults.latency_s > 0 and not media._pause(faults.latency_s):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        retry_after = {"Retry-After": faults.retry_after} if faults.retry_after else {}
        if nth <= faults.fail_first:
            self._send_page(faults.status or 503, head, retry_after)
        elif faults.status is not None and faults.fail_first == 0:
            self._send_page(faults.status, head, retry_after)
        elif faults.redirect_to is not None:
            self._send_page(302, head, {"Location": faults.redirect_to})
        elif faults.require_auth and self.headers.get("Authorization") != AUTH_VALUE:
            self._send_page(401, head, {"WWW-Authenticate": "Bearer"})
        elif faults.redirect_loop:
            self._redirect(split.path, query, "n", head)
        elif _query_int(query, "hop") < faults.redirects:
            self._redirect(split.path, query, "hop", head)
        else:
            found = _resolve(media.root, split.path)
            if found is None:
                self._send_page(404, head)
            else:
                self._send_file(found, faults, head)

    def _start(self, status: int, headers: dict[str, str]) -> None:
        """Log the response, then send its status line and headers."""
        port = self.client_address[1]
        entry = _Entry(self.command, self.path, self.headers.get("Range"), status, port)
        media = self.server.owner
        self._entry = media._open_entry(entry)
        drip_s = media.faults.drip_headers_s
        if drip_s <= 0:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            return
        # Written by hand, a byte at a time: a client's read timeout restarts with every byte.
        phrase = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
        for byte in "".join(f"{line}\r\n" for line in [*lines, ""]).encode("latin-1"):
            try:
                self.wfile.write(bytes([byte]))
            except OSError:
                break
            if not media._pause(drip_s):
                break
        else:
            return
        self.close_connection = True
        raise ConnectionAbortedError("the client left, or the server stopped, mid-headers")

    def _send_page(self, status: int, head: bool, extra: dict[str, str] | None = None) -> None:
        phrase = self.responses.get(status, ("Error",))[0]
        body = f"<!doctype html><title>{status} {phrase}</title><h1>{status} {phrase}</h1>\n"
        data = body.encode()
        headers = {**(extra or {}), "Content-Type": "text/html; charset=utf-8"}
        self._start(status, {**headers, "Content-Length": str(len(data))})
        if not head:
            self._write(data)

    def _redirect(self, path: str, query: dict[str, str], key: str, head: bool) -> None:
        # Other query parameters ride along, as a presigned URL's would through a CDN redirect.
        hopped = {**query, key: str(_query_int(query, key) + 1)}
        self._send_page(302, head, {"Location": f"{path}?{urlencode(hopped)}"})

    def _send_file(self, path: Path, faults: Faults, head: bool) -> None:
        stat = path.stat()
        size = stat.st_size
        first, last, status = 0, size - 1, 200
        header = self.headers.get("Range")
        # RFC 9110 defines Range for GET only, so HEAD answers as a plain GET would.
        if header is not None and not head and not faults.no_range:
            try:
                asked = _parse_range(header, size)
            except _RangeNotSatisfiable:
                self._send_page(416, head, {"Content-Range": f"bytes */{size}"})
                return
            if asked is not None:
                (first, last), status = asked, 206
        length = last - first + 1
        headers = {
            "Content-Type": faults.content_type or _content_type(path),
            "Content-Length": str(max(0, length + faults.wrong_length)),
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if not faults.no_range:
            headers["Accept-Ranges"] = "bytes"
        if faults.etag:
            headers["ETag"] = f'"{size:x}-{stat.st_mtime_ns:x}"'
            headers["Last-Modified"] = email.utils.formatdate(stat.st_mtime, usegmt=True)
        self._start(status, headers)
        if head:
            return
        if faults.wrong_length or faults.cut_body_at is not None:
            # The framing is now wrong on purpose; reusing the connection would feed the
            # leftover (or missing) bytes into the next response.
            self.close_connection = True
        if faults.stall_s > 0 and not self.server.owner._pause(faults.stall_s):
            self.close_connection = True
            return
        if faults.cut_body_at is not None:
            length = min(length, max(0, faults.cut_body_at))
        with path.open("rb") as source:
            source.seek(first)
            self._stream(source, length)

    def _stream(self, source: BinaryIO, length: int) -> None:
        drip_s = self.server.owner.faults.drip_body_s
        while length > 0:
            chunk = source.read(1 if drip_s > 0 else min(CHUNK_BYTES, length))
            if drip_s > 0 and not self.server.owner._pause(drip_s):
                self.close_connection = True
                return
            if not chunk or not self._write(chunk):
                return
            length -= len(chunk)

    def _write(self, data: bytes) -> bool:
        """Send body bytes; False when the client has gone, which range readers do on purpose."""
        assert self._entry is not None
        media = self.server.owner
        # Counted before the send so the log is complete by the time the client holds the bytes.
        media._count(self._entry, len(data))
        try:
            self.wfile.write(data)
        except OSError:  # BrokenPipe, ConnectionReset, a send that timed out
            media._count(self._entry, -len(data))
            self.close_connection = True
            return False
        return True


class MediaServer(LoopbackServer):
    """Serves the files under `root` on loopback, logging each request; faults may change live."""

    _label = "MediaServer"

    def __init__(
        self,
        root: str | Path,
        *,
        faults: Faults = Faults(),
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise UsageError(f"not a folder: {root}")
        self._faults = faults
        self._entries: list[_Entry] = []
        self._seen = 0  # requests since the faults were last set, for fail_first
        self._accepted = 0  # connections accepted since reset_log(), requests or not
        super().__init__(host, port, _Handler)
        self._tls = tls
        if tls is not None:
            # The handshake happens on the handler's first read, on its own thread, so a client
            # that never speaks TLS cannot block accept() for everyone else.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self.port}"

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        # fail_first counts from the moment its faults take effect.
        with self._lock:
            self._faults, self._seen = faults, 0

    def url(self, name: str) -> str:
        return f"{self.base_url}/{quote(name)}"

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [entry.frozen() for entry in self._entries]

    def reset_log(self) -> None:
        with self._lock:
            self._entries.clear()
            self._accepted = 0

    @property
    def connections(self) -> int:
        """Connections accepted since the log was reset, whether or not a request followed."""
        with self._lock:
            return self._accepted

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return sum(entry.body_bytes for entry in self._entries)

    # The methods below are the handler's side of the server.

    def _next_request(self) -> tuple[Faults, int]:
        """The faults for a new request and its 1-based number since they were set."""
        with self._lock:
            self._seen += 1
            return self._faults, self._seen

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._accepted += 1
        super()._track(connection)

    def _open_entry(self, entry: _Entry) -> _Entry:
        with self._lock:
            self._entries.append(entry)
        return entry

    def _count(self, entry: _Entry, body_bytes: int) -> None:
        with self._lock:
            entry.body_bytes += body_bytes


def main(argv: list[str] | None = None) -> int:
    """`python -m preflight.testing.media_server DIR`: print the base URL, serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m preflight.testing.media_server",
        description="Serve a folder on loopback with Range.",
    )
    parser.add_argument("dir", type=Path, help="the folder to serve")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait before each answer")
    parser.add_argument("--no-range", action="store_true", help="ignore Range, answer 200")
    args = parser.parse_args(argv)
    faults = Faults(latency_s=args.latency_ms / 1000, no_range=args.no_range)
    try:
        server = MediaServer(args.dir, faults=faults, port=args.port)
    except (UsageError, OSError) as error:
        parser.error(str(error))
    serve_until_interrupt(server, lambda: [server.base_url])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
