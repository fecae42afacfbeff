"""A seekable, read-only file over HTTP(S) that fetches only the byte ranges it is asked for.

Fetched ranges are kept in an interval cache; ranges marked `free` (an mdat payload) read as zeros
and cost no transfer, so MediaInfo can walk the file without downloading the media.
"""

from __future__ import annotations

import bisect
import io
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from ..errors import NetworkError, ProbeError
from ..verdict import Transfer

if TYPE_CHECKING:
    from .deadline import Deadline

DEFAULT_READAHEAD = 16 * 1024  # a box header read pulls in what usually follows it


class RangedFile(io.RawIOBase):
    """File-like view of `size` bytes at `url`, read with Range requests on one Session.

    Every request stays on `url` (redirects are not followed: the probe judged where the first
    request's redirects ended, and the Session connects only to judged addresses) and inside
    `deadline`.
    """

    def __init__(
        self,
        session: requests.Session,
        url: str,
        size: int,
        *,
        timeout: tuple[float, float],
        transfer: Transfer,
        deadline: Deadline | None = None,
        readahead: int = DEFAULT_READAHEAD,
        known: dict[int, bytes] | None = None,
        limit: int | None = None,
        eof_at: int | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.url = url
        self.size = size
        self.timeout = timeout
        self.transfer = transfer
        self.deadline = deadline
        self.readahead = readahead
        # Only the first `limit` bytes can be had (the server ignores Range): past it, reads fail.
        self.limit = limit
        # Reads at or past `eof_at` see the end of the file: a budget for readers we do not steer.
        self.eof_at = eof_at
        self._starts: list[int] = []  # sorted starts of cached segments; segments never overlap
        self._data: dict[int, bytes] = {}
        self._free: list[tuple[int, int]] = []  # [start, end) ranges that read as zeros
        self._pos = 0
        for start, data in (known or {}).items():
            self._store(start, data)

    # -- file protocol -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        data = self.read_at(self._pos, size)
        self._pos += len(data)
        return data

    # -- ranges --------------------------------------------------------------------------------
    def mark_free(self, start: int, end: int) -> None:
        """Let reads inside [start, end) return zeros without any transfer (an mdat payload)."""
        if end > start:
            self._free.append((start, end))

    def read_at(self, offset: int, length: int) -> bytes:
        end = min(self.size if self.eof_at is None else self.eof_at, self.size, offset + length)
        if offset >= end:
            return b""
        out = bytearray()
        pos = offset
        while pos < end:
            cached = self._cached_at(pos)
            if cached is not None:
                start, data = cached
                piece = data[pos - start : end - start]
                out += piece
                pos += len(piece)
                continue
            free_end = self._free_end(pos)
            if free_end is not None:
                stop = min(end, free_end)
                out += bytes(stop - pos)
                pos = stop
                continue
            gap_end = min(end, self._next_boundary(pos))
            self._fetch(pos, max(gap_end, min(self._next_boundary(pos), pos + self.readahead)))
        return bytes(out)

    def _cached_at(self, pos: int) -> tuple[int, bytes] | None:
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0:
            start = self._starts[i]
            data = self._data[start]
            if pos < start + len(data):
                return start, data
        return None

    def _free_end(self, pos: int) -> int | None:
        for start, end in self._free:
            if start <= pos < end:
                return end
        return None

    def _next_boundary(self, pos: int) -> int:
        """Where the next cached segment or free range starts, or the end of the file."""
        i = bisect.bisect_right(self._starts, pos)
        candidates = [self.size]
        if i < len(self._starts):
            candidates.append(self._starts[i])
        candidates += [start for start, _ in self._free if start > pos]
        return min(candidates)

    def _store(self, start: int, data: bytes) -> None:
        if not data:
            return
        bisect.insort(self._starts, start)
        self._data[start] = data

    def _fetch(self, start: int, end: int) -> None:
        if self.limit is not None and end > self.limit:
            raise ProbeError(
                f"the server ignores Range requests and the index lies past the first "
                f"{self.limit} bytes read (of {self.size}): serve the file with Range support or "
                "move the moov box to the front (ffmpeg -movflags +faststart)",
                kind="no_range",
            )
        data = fetch_range(
            self.session, self.url, start, end, self.timeout, self.transfer, self.deadline
        )
        self._store(start, data)


def fetch_range(
    session: requests.Session,
    url: str,
    start: int,
    end: int,
    timeout: tuple[float, float],
    transfer: Transfer,
    deadline: Deadline | None = None,
) -> bytes:
    """GET bytes [start, end) of url; a body cut short is asked for again once, then an error."""
    got = b""
    for _attempt in range(2):
        want_from = start + len(got)
        if deadline is not None:
            deadline.check()
            timeout = (deadline.limit(timeout[0]), deadline.limit(timeout[1]))
        try:
            response = session.get(
                url,
                headers={"Range": f"bytes={want_from}-{end - 1}"},
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise network_error(exc, deadline) from None
        transfer.requests += 1
        with response:
            if deadline is not None:
                # Headers cut short by the watchdog, or a 5xx kept because time ran out.
                deadline.check()
            if response.status_code != 206:
                raise NetworkError(
                    f"the server answered {response.status_code} to a Range request for bytes "
                    f"{want_from}-{end - 1}"
                )
            chunk = read_body(response, end - want_from, transfer, deadline)
        got += chunk
        if len(got) >= end - start:
            return got[: end - start]
    raise NetworkError(
        f"the server sent {len(got)} of {end - start} bytes asked for at offset {start}, twice: "
        "the connection was cut or Content-Length is wrong"
    )


def read_body(
    response: requests.Response, limit: int, transfer: Transfer, deadline: Deadline | None = None
) -> bytes:
    """Up to `limit` bytes of a streamed body; fewer when the server cuts it short.

    Raises the deadline's timeout once it has passed, also between chunks of a body that is
    still arriving (each chunk may be a single byte: no read timeout catches a drip).
    """
    parts: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_content(64 * 1024):
            parts.append(chunk[: limit - received])
            received += len(parts[-1])
            transfer.bytes += len(chunk)  # what crossed the network, kept or not
            if received >= limit:
                break
            if deadline is not None:
                deadline.check()
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
        error = network_error(exc, deadline)
        if error.kind == "timeout":
            raise error from None
        # Otherwise a body cut short: the caller sees fewer bytes and asks again.
    except requests.exceptions.Timeout as exc:
        raise network_error(exc, deadline) from None
    return b"".join(parts)


def network_error(exc: BaseException, deadline: Deadline | None = None) -> NetworkError:
    """One-line NetworkError for a requests exception (never the exception's own long text).

    Once the deadline has passed, whatever broke (the watchdog hangs up) is the deadline's timeout.
    """
    if deadline is not None and deadline.expired:
        return deadline.error()
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return NetworkError("more than 5 redirects (a redirect loop?)", kind="redirects")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return NetworkError("could not connect in time (connect timeout)", kind="timeout")
    # requests reports a stall inside a body as a ConnectionError around urllib3's timeout, and
    # a stall before the headers (our Retry never retries reads) as a ConnectionError around a
    # MaxRetryError whose reason is that timeout: both are the server going quiet, not a refusal.
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, urllib3.exceptions.MaxRetryError):
        cause = cause.reason
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError) or isinstance(
        exc, requests.exceptions.Timeout
    ):
        return NetworkError(
            "connected, but the server stopped sending for longer than the read timeout "
            "(read timeout)",
            kind="timeout",
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return NetworkError("TLS failed: the certificate could not be verified", kind="network")
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        return NetworkError("could not connect: the connection was refused", kind="network")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return NetworkError(
            "the connection was dropped before the answer was complete",
            kind="network",
        )
    return NetworkError(f"the request failed: {type(exc).__name__}", kind="network")
