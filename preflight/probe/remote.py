"""Probe a video at an http(s) URL by reading only its boxes: one Session, small Range requests.

The box reader walks top-level headers and fetches `moov` whole; MediaInfo and ffprobe read a
snapshot of those bytes (snapshot.py) in which `mdat` payloads are zeros, never the URL itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import NetworkError, ProbeError
from ..facts import BackendReading

if TYPE_CHECKING:
    from ..cache import ProbeCache
from . import ProbeResult, answered_by, probe_stream
from .limits import ProbeLimits
from .options import RemoteOptions
from .ranged import RangedFile, Transfer, network_error, read_body
from .snapshot import sparse_file, take

FIRST_READ = 64 * 1024  # ftyp, and for a faststart file most of moov, in the first request
MAX_REDIRECTS = 5
NON_MP4_BUDGET = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass
class RemoteInfo:
    """What the server told us about the resource, and what reading it cost."""

    url: str
    final_url: str = ""
    status: int = 0
    size_bytes: int | None = None
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""
    range_supported: bool = True
    prefix_only: bool = False  # no Range support and the file is larger than what we read
    cached: bool = False  # the facts came from the probe cache after the first request
    transfer: Transfer = field(default_factory=Transfer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "final_url": self.final_url,
            "status": self.status,
            "size_bytes": self.size_bytes,
            "content_type": self.content_type,
            "range_supported": self.range_supported,
            "prefix_only": self.prefix_only,
            "bytes": self.transfer.bytes,
            "requests": self.transfer.requests,
        }


class HttpStatusError(NetworkError):
    """The server answered with a status that is not the file (4xx after redirects)."""

    def __init__(self, status: int, info: RemoteInfo) -> None:
        super().__init__(f"HTTP {status}", kind="http_status")
        self.status = status
        self.info = info


def open_session(options: RemoteOptions) -> requests.Session:
    """A Session with urllib3's Retry for refused connections and 5xx, honouring Retry-After."""
    session = requests.Session()
    retry = Retry(
        total=None,
        connect=options.retries,
        read=0,
        status=options.retries,
        other=0,
        redirect=False,
        backoff_factor=0.25,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = "preflight (video pre-flight check; Range reader)"
    return session


def probe_url(
    url: str,
    *,
    backend: str = "auto",
    options: RemoteOptions | None = None,
    cache: ProbeCache | None = None,
    limits: ProbeLimits | None = None,
) -> tuple[ProbeResult, RemoteInfo]:
    """Probe the video at `url`. Raises ProbeError, NetworkError or HttpStatusError."""
    options = options or RemoteOptions()
    info = RemoteInfo(url=url)
    with open_session(options) as session:
        first = _first_read(session, url, options, info)
        key = None
        if cache is not None:
            # The first answer's validators tell whether the resource changed since last time.
            key = cache.url_key(
                info.final_url, info.etag, info.last_modified, info.size_bytes, backend
            )
            hit = cache.get(key)
            if hit is not None:
                info.cached = True
                return ProbeResult(hit[0], {}, hit[1], answered_by(backend, hit[0])), info
        limit = None if info.range_supported or info.size_bytes is None else len(first)
        size = info.size_bytes if info.size_bytes is not None else len(first)
        reader = RangedFile(
            session,
            info.final_url,
            size,
            timeout=options.timeout,
            transfer=info.transfer,
            known={0: first},
            limit=limit,
        )
        bounds = limits or ProbeLimits()
        readers = {
            "mediainfo": lambda _name: _mediainfo_over(reader, bounds),
            "ffprobe": lambda _name: _ffprobe_over(reader, info.final_url, bounds),
        }
        try:
            result = probe_stream(reader, size, url, backend=backend, readers=readers)
        except ProbeError as exc:
            if exc.kind == "no_range" or limit is None or size <= len(first):
                raise
            raise ProbeError(
                f"the server ignores Range requests, and the first {len(first)} bytes of "
                f"{size} do not hold a usable index ({exc})",
                kind="no_range",
            ) from None
    if cache is not None:
        cache.put(key, result.facts, result.disagreements)
    return result, info


def _first_read(
    session: requests.Session, url: str, options: RemoteOptions, info: RemoteInfo
) -> bytes:
    try:
        response = session.get(
            url,
            headers={"Range": f"bytes=0-{FIRST_READ - 1}"},
            timeout=options.timeout,
            stream=True,
            allow_redirects=True,
        )
    except requests.RequestException as exc:
        raise network_error(exc) from None
    with response:
        info.transfer.requests += 1 + len(response.history)
        info.final_url = response.url
        info.status = response.status_code
        info.content_type = response.headers.get("Content-Type", "")
        info.etag = response.headers.get("ETag", "")
        info.last_modified = response.headers.get("Last-Modified", "")
        if response.status_code == 416 and response.headers.get("Content-Range", "").endswith("/0"):
            # Range 0-… of an empty resource cannot be satisfied: it is the zero-byte case.
            info.size_bytes = 0
            raise ProbeError("the file is empty (0 bytes)", kind="empty")
        if 400 <= response.status_code < 500:
            raise HttpStatusError(response.status_code, info)
        if response.status_code >= 500:
            raise NetworkError(
                f"the server answered HTTP {response.status_code} after {options.retries} retries",
                kind="http_status",
            )
        if response.status_code == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            if not match or match.group(3) == "*":
                raise NetworkError("a 206 answer without a usable Content-Range", kind="network")
            info.size_bytes = int(match.group(3))
            wanted = min(FIRST_READ, info.size_bytes)
            body = read_body(response, wanted, info.transfer)
            if len(body) < wanted:
                raise NetworkError(
                    f"the body was cut short: {len(body)} of {wanted} bytes arrived "
                    "(the connection closed early, or Content-Length is wrong)",
                    kind="network",
                )
            return body
        if response.status_code != 200:
            raise NetworkError(f"unexpected HTTP {response.status_code}", kind="http_status")
        # No Range support: the whole file comes; keep a capped prefix and hang up.
        info.range_supported = False
        declared = response.headers.get("Content-Length")
        body = read_body(response, options.max_prefix_bytes, info.transfer)
        whole = len(body) < options.max_prefix_bytes
        info.size_bytes = (
            len(body) if whole else (int(declared) if declared and declared.isdigit() else None)
        )
        info.prefix_only = not whole
        return body


def _mediainfo_over(reader: RangedFile, limits: ProbeLimits) -> BackendReading:
    from .mediainfo import read_snapshot

    # The worker never sees the network: it parses the index bytes fetched here, mdat payloads
    # as zeros; for anything not MP4 (already a container reject) the first MiB names it.
    return read_snapshot(take(reader, reader.size, non_mp4_budget=NON_MP4_BUDGET), limits=limits)


def _ffprobe_over(reader: RangedFile, name: str, limits: ProbeLimits) -> BackendReading:
    from . import ffprobe

    # ffprobe reads the same snapshot from a sparse temp file, not the URL: given the URL it
    # would follow redirects (and reach addresses) our checks never saw, and read as it likes.
    snapshot = take(reader, reader.size, non_mp4_budget=NON_MP4_BUDGET)
    with sparse_file(snapshot, name) as path:
        return ffprobe.read(path, limits=limits)
