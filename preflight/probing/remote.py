"""Probe a video at an http(s) URL by reading only its boxes: one Session, small Range requests.

Redirects are followed here, each hop judged (urlcheck.judge_hop) before anything connects to it;
the box reader walks top-level headers and fetches `moov` whole; MediaInfo and ffprobe read a
snapshot of those bytes (snapshot.py) in which `mdat` payloads are zeros, never the URL itself.
One deadline (RemoteOptions.deadline_s) bounds all of it.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import requests

from ..errors import NetworkError, ProbeError, UsageError
from ..facts import BackendReading
from ..policy.url import UrlGate, UrlJudgement, host_of, judge_hop, redact_url, resolve_host

if TYPE_CHECKING:
    from ..cache import ProbeCache
    from ..verdict import Violation
from .limits import ProbeLimits
from .local import ProbeResult, answered_by, probe_stream
from .options import RemoteOptions
from .ranged import RangedFile, Transfer, network_error, read_body
from .snapshot import sparse_file, take
from .transport import Deadline, open_session

FIRST_READ = 64 * 1024  # ftyp, and for a faststart file most of moov, in the first request
MAX_REDIRECTS = 5
NON_MP4_BUDGET = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass
class RemoteInfo:
    """What the server told us about the resource, and what reading it cost."""

    url: str  # as given, with any credentials redacted
    final_url: str = ""  # where the redirects ended, redacted likewise
    status: int = 0
    size_bytes: int | None = None
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""
    range_supported: bool = True
    prefix_only: bool = False  # no Range support and the file is larger than what we read
    cached: bool = False  # the facts came from the probe cache after the first request
    transfer: Transfer = field(default_factory=Transfer)
    # What judging the redirect hops found that does not stop the probe (plain http, a private
    # hop under allow_private); the check adds these to the source's warnings.
    hop_warnings: list[Violation] = field(default_factory=list)

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


class RedirectRefused(NetworkError):
    """A redirect pointed where the API cannot or must not fetch; nothing connected to it.

    `judgement.violations` are `url.*` rules naming the hop (a reject, not an error).
    """

    def __init__(self, judgement: UrlJudgement, info: RemoteInfo) -> None:
        super().__init__(judgement.violations[0].message)
        self.judgement = judgement
        self.info = info


def probe_url(
    url: str,
    *,
    backend: str = "auto",
    options: RemoteOptions | None = None,
    cache: ProbeCache | None = None,
    gate: UrlGate | None = None,
    limits: ProbeLimits | None = None,
) -> tuple[ProbeResult, RemoteInfo]:
    """Probe the video at `url`. Raises ProbeError, NetworkError, HttpStatusError, RedirectRefused.

    `gate` judges every redirect hop and holds the addresses the connections go to; the check
    passes the gate that judged `url` itself, so its host is resolved once. Without one, private
    redirect hops are refused and `url`'s host is resolved here.
    """
    options = options or RemoteOptions()
    gate = gate or UrlGate(
        public_networks=options.public_networks, resolve=options.resolve or resolve_host
    )
    if url != redact_url(url):
        # requests would send them as Basic auth; the check rejects such a URL (url.credentials).
        raise UsageError("a URL with credentials (user:password@) is not fetched")
    info = RemoteInfo(url=url)
    host = host_of(url)
    if host is None:
        raise UsageError("the URL has no usable host (or a bad port)")
    gate.addresses(host)  # the URL the caller named is connected to, private or not
    with Deadline(options.deadline_s) as deadline, open_session(options, gate, deadline) as session:
        first = _first_read(session, url, options, info, gate, deadline)
        key = None
        if cache is not None:
            # The first answer's validators tell whether the resource changed since last time.
            key = cache.url_key(
                info.final_url, info.etag, info.last_modified, info.size_bytes, backend
            )
            hit = cache.get(key)
            if hit is not None:
                info.cached = True
                return ProbeResult(hit[0], hit[1], answered_by(backend, hit[0])), info
        limit = None if info.range_supported or info.size_bytes is None else len(first)
        size = info.size_bytes if info.size_bytes is not None else len(first)
        reader = RangedFile(
            session,
            info.final_url,
            size,
            timeout=options.timeout,
            transfer=info.transfer,
            deadline=deadline,
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
            deadline.check()  # a reader that gave up because the watchdog hung up
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


def _get_following_redirects(
    session: requests.Session,
    url: str,
    options: RemoteOptions,
    info: RemoteInfo,
    gate: UrlGate,
    deadline: Deadline,
) -> requests.Response:
    """GET the first bytes of `url`, following at most MAX_REDIRECTS redirects ourselves.

    requests would connect to a redirect's target before anyone judged it; here every hop is
    judged first, and a refused hop ends the probe with nothing connected to it.
    """
    for _hop in range(MAX_REDIRECTS + 1):
        deadline.check()
        try:
            response = session.get(
                url,
                headers={"Range": f"bytes=0-{FIRST_READ - 1}"},
                timeout=deadline.timeouts(options),
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise network_error(exc, deadline) from None
        info.transfer.requests += 1
        info.final_url = url
        if deadline.expired:
            # The watchdog may have cut the headers short; whatever arrived cannot be trusted.
            response.close()
            raise deadline.error()
        location = session.get_redirect_target(response)
        if location is None:
            return response
        response.close()
        target = urljoin(url, location)
        judgement = judge_hop(url, target, gate)
        if judgement.violations:
            info.hop_warnings += judgement.warnings
            raise RedirectRefused(judgement, info)
        info.hop_warnings += judgement.warnings
        url = target
    raise NetworkError(f"more than {MAX_REDIRECTS} redirects (a redirect loop?)", kind="redirects")


def _retry_after_message(
    response: requests.Response, options: RemoteOptions, deadline: Deadline
) -> str:
    """Why a 5xx is the answer: a Retry-After longer than we wait, or the retries ran out."""
    said = f"the server answered HTTP {response.status_code}"
    retry_after = response.headers.get("Retry-After", "").strip()
    wait = _retry_after_s(retry_after)
    if wait is not None and (wait > options.retry_after_cap_s or wait >= deadline.remaining()):
        unit = " s" if retry_after.isdigit() else ""
        return (
            f"{said} and asks to be retried after {retry_after[:40]}{unit}: longer than a probe "
            f"waits (at most {options.retry_after_cap_s:g} s, and never past its "
            f"{options.deadline_s:g} s deadline)"
        )
    return f"{said} after {options.retries} retries"


def _retry_after_s(value: str) -> float | None:
    """Seconds a Retry-After (seconds or an HTTP date) asks for; None if absent or unreadable."""
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - datetime.now(timezone.utc)).total_seconds()


def _first_read(
    session: requests.Session,
    url: str,
    options: RemoteOptions,
    info: RemoteInfo,
    gate: UrlGate,
    deadline: Deadline,
) -> bytes:
    response = _get_following_redirects(session, url, options, info, gate, deadline)
    with response:
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
            deadline.check()  # the retries stopped because the time ran out
            raise NetworkError(
                _retry_after_message(response, options, deadline), kind="http_status"
            )
        if response.status_code == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            if not match or match.group(3) == "*":
                raise NetworkError("a 206 answer without a usable Content-Range", kind="network")
            info.size_bytes = int(match.group(3))
            wanted = min(FIRST_READ, info.size_bytes)
            body = read_body(response, wanted, info.transfer, deadline)
            if len(body) < wanted:
                deadline.check()  # the watchdog hung up: that is the deadline, not a short body
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
        body = read_body(response, options.max_prefix_bytes, info.transfer, deadline)
        deadline.check()
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
        try:
            return ffprobe.read(path, limits=limits)
        except ProbeError as exc:  # ffprobe names the temp file: say the URL the user gave
            raise ProbeError(str(exc).replace(path, name), kind=exc.kind) from None
