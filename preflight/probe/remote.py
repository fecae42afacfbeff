"""Probe a video at an http(s) URL by reading only its boxes: one Session, small Range requests.

The box reader walks top-level headers and fetches `moov` whole; MediaInfo reads through a view in
which `mdat` payloads are zeros; ffprobe is given the URL itself, with timeouts.
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
from . import ProbeResult, boxes, probe_stream
from .options import RemoteOptions
from .ranged import RangedFile, Transfer, network_error, read_body

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
    backend: str = "mediainfo",
    options: RemoteOptions | None = None,
    cache: ProbeCache | None = None,
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
                return ProbeResult(hit[0], {}, hit[1]), info
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
        readers = {
            "mediainfo": lambda _name: _mediainfo_over(reader),
            "ffprobe": lambda _name: _ffprobe_over(info.final_url, options),
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


def _mediainfo_over(reader: RangedFile) -> BackendReading:
    from pymediainfo import MediaInfo

    from .mediainfo import PARSE_SPEED, TEMPLATE, parse_template_output

    # mdat payloads read as zeros: MediaInfo walks the file, the network carries only the index.
    reader.seek(0)
    if boxes.looks_like_isobmff(reader.read(16)):
        for box in boxes.walk_top(reader, reader.size):
            if box.type == "mdat":
                reader.mark_free(box.offset + box.header, box.offset + box.size)
    else:
        # Not MP4 (already a container reject): MediaInfo would read all of a WebM; its headers
        # name the format and codec within the first MiB.
        reader.eof_at = NON_MP4_BUDGET
        reader.readahead = NON_MP4_BUDGET // 4
    reader.seek(0)
    try:
        text = MediaInfo.parse(reader, parse_speed=PARSE_SPEED, output=TEMPLATE)
    except (OSError, RuntimeError) as exc:
        raise ProbeError(f"MediaInfo could not read it: {exc}", kind="unreadable") from exc
    return parse_template_output(str(text))


def _ffprobe_over(url: str, options: RemoteOptions) -> BackendReading:
    from . import ffprobe

    # ffprobe's own I/O timeout is in microseconds; our timeout bounds the whole child.
    rw_timeout = str(int(options.read_timeout_s * 1_000_000))
    data = ffprobe.run_json(
        url,
        ["-rw_timeout", rw_timeout, "-show_format", "-show_streams"],
        options.connect_timeout_s + options.read_timeout_s * 2,
    )
    return ffprobe.reading_from_json(data)
