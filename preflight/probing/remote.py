"""Read a video at an http(s) URL by its boxes only: one Session, small Range requests.

`fetch` opens the URL: redirects are followed here, each hop judged by the caller's gate (gate.py:
the pipeline builds it from the policy) before anything connects to it, and the first answer is
kept as data (RemoteInfo: a 4xx status or a refused hop is for the judge, not an exception).
`RemoteSource.probe` then walks top-level box headers and fetches `moov` whole; MediaInfo and
ffprobe read a snapshot of those bytes (snapshot.py) in which `mdat` payloads are zeros, never the
URL itself. One deadline (RemoteOptions.deadline_s) bounds all of it.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from urllib.parse import urljoin

import requests

from ..errors import NetworkError, ProbeError, UsageError
from ..facts import BackendName, BackendReading
from ..sources import host_of, redact_url
from ..verdict import RemoteInfo
from .deadline import Deadline
from .gate import Gate
from .limits import ProbeLimits
from .local import ProbeResult, probe_stream
from .options import RemoteOptions
from .ranged import RangedFile, network_error, read_body
from .snapshot import sparse_file, take
from .transport import ConnectionPools, open_session

FIRST_READ = 64 * 1024  # ftyp, and for a faststart file most of moov, in the first request
MAX_REDIRECTS = 5
NON_MP4_BUDGET = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class RemoteSource:
    """A URL being read: what its server answered first, and the open session to read the rest.

    Made by `fetch`; valid only inside its `with` block (the session and the deadline end there).
    """

    def __init__(
        self,
        session: requests.Session,
        deadline: Deadline,
        options: RemoteOptions,
        info: RemoteInfo,
        first: bytes | None,
    ) -> None:
        self.info = info
        self.first = first  # None: the answer did not hold the file (a 4xx, a refused redirect)
        self._session = session
        self._deadline = deadline
        self._options = options

    def probe(self, backend: BackendName, limits: ProbeLimits | None = None) -> ProbeResult:
        """Probe the video from the first bytes on, with Range requests for the rest.

        Raises ProbeError, or NetworkError when the server fails mid-way or the deadline passes.
        """
        info, first, deadline = self.info, self.first, self._deadline
        if first is None:
            raise ProbeError(f"{info.url} answered HTTP {info.status}, not the file")
        limit = None if info.range_supported or info.size_bytes is None else len(first)
        size = info.size_bytes if info.size_bytes is not None else len(first)
        reader = RangedFile(
            self._session,
            info.final_url,
            size,
            timeout=self._options.timeout,
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
            return probe_stream(reader, size, info.url, backend=backend, readers=readers)
        except ProbeError as exc:
            deadline.check()  # a reader that gave up because the watchdog hung up
            if exc.kind == "no_range" or limit is None or size <= len(first):
                raise
            raise ProbeError(
                f"the server ignores Range requests, and the first {len(first)} bytes of "
                f"{size} do not hold a usable index ({exc})",
                kind="no_range",
            ) from None


@contextmanager
def fetch(
    url: str,
    *,
    gate: Gate,
    options: RemoteOptions | None = None,
    pools: ConnectionPools | None = None,
) -> Iterator[RemoteSource]:
    """GET the first bytes of `url`; the RemoteSource yielded reads the rest while the block runs.

    Raises NetworkError for what stops a read (dns, refused, timeout, 5xx after retries, redirect
    loops) and ProbeError (kind empty) for a zero-byte resource; a 4xx or a refused redirect is
    data in `info`. `gate` judges `url` and every redirect hop and holds the addresses the
    connections go to; the check passes the gate that judged `url` itself, so its host is
    resolved once. A private `url` is refused (UsageError) unless the gate allows it. `pools`:
    a run's kept-alive connections (the caller closes them); None: the probe's own, closed here.
    """
    options = options or RemoteOptions()
    if url != redact_url(url):
        # requests would send them as Basic auth; the check rejects such a URL (url.credentials).
        raise UsageError("a URL with credentials (user:password@) is not fetched")
    info = RemoteInfo(url=url)
    host = host_of(url)
    if host is None:
        raise UsageError("the URL has no usable host (or a bad port)")
    # The URL named is judged like a redirect hop, before anything connects (the check already
    # refused it as url.public; this holds for every caller): resolved once, pinned for the
    # connection, and a private address is not connected to unless the gate allows it.
    private = gate.private_address(host)
    if private and not gate.allow_private:
        raise UsageError(
            f"{redact_url(url)}: {host} resolves to {private}, a private address the API cannot "
            "reach; nothing was connected to it"
        )
    with contextlib.ExitStack() as stack:
        # A batch shares its run's connections; a lone probe opens its own and closes them here.
        pools = pools or stack.enter_context(ConnectionPools(options.per_host))
        deadline = stack.enter_context(Deadline(options.deadline_s))
        session = stack.enter_context(open_session(options, gate, deadline, pools))
        first = _first_read(session, url, options, info, gate, deadline)
        yield RemoteSource(session, deadline, options, info, first)


def _get_following_redirects(
    session: requests.Session,
    url: str,
    options: RemoteOptions,
    info: RemoteInfo,
    gate: Gate,
    deadline: Deadline,
) -> requests.Response | None:
    """GET the first bytes of `url`, following at most MAX_REDIRECTS redirects ourselves.

    requests would connect to a redirect's target before anyone judged it; here every hop is
    judged first, and a refused hop ends the probe with nothing connected to it (None: the
    rules it broke are in `info.refused`).
    """
    for _hop in range(MAX_REDIRECTS + 1):
        deadline.check()
        try:
            response = session.get(
                url,
                headers={"Range": f"bytes=0-{FIRST_READ - 1}"},
                timeout=deadline.timeouts(options.timeout),
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
        judgement = gate.judge_hop(url, target)
        info.hop_warnings += judgement.warnings
        if judgement.violations:
            info.refused = judgement.violations
            return None
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
    gate: Gate,
    deadline: Deadline,
) -> bytes | None:
    """The first bytes of the file, or None when the answer is not the file (a 4xx, a refused
    redirect): `info` then holds what the server said, for the url rules."""
    response = _get_following_redirects(session, url, options, info, gate, deadline)
    if response is None:
        return None
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
            return None  # url.status: the judge words it from info.status
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
