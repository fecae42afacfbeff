"""The `url` rule family: what makes a URL one the API can fetch, judged before and after we fetch.

Scheme, host, credentials, public address (of the URL and of every redirect hop, with the judged
addresses pinned for the connection), HTTP status, presigned-URL expiry, Content-Type, Range.
The rules are pure functions of UrlFacts; the one network step, resolving the host, is UrlGate's.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from ..errors import NetworkError
from ..sources import has_userinfo, host_of, redact_url
from ..verdict import RemoteInfo, Violation

EXPIRY_WARNING = timedelta(minutes=30)
VIDEO_TYPES = {"video/mp4", "video/quicktime", "application/octet-stream"}
# Rules after which nothing is fetched: the URL cannot be fetched, fetching would send secrets, or
# it would connect to an address the API cannot reach (the first URL is judged like a redirect
# hop, so a service calling check_one(user_url) never sends a request inside its own network).
UNFETCHABLE = frozenset({"url.scheme", "url.host", "url.credentials", "url.public"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")

Resolver = Callable[[str], Sequence[str]]


def resolve_host(host: str) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError(f"cannot resolve host {host}: {exc}", kind="dns") from None
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


def _host_key(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


@dataclass
class UrlGate:
    """Judges addresses before anything connects, and remembers what it judged.

    Each host is resolved once per probe; the connection goes to exactly those addresses (see
    probing/transport.py), so a DNS answer that changes between the check and the connect (DNS
    rebinding) cannot steer the probe to an address nobody judged.
    """

    allow_private: bool = False
    public_networks: tuple[str, ...] = ()  # counted as public although they are not (tests, a lab)
    resolve: Resolver = resolve_host
    _pins: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def addresses(self, host: str) -> tuple[str, ...]:
        """The addresses of `host`: resolved on the first call, the same ones on later calls."""
        key = _host_key(host)
        if key not in self._pins:
            found = tuple(str(a) for a in self.resolve(key))
            if not found:
                raise NetworkError(f"cannot resolve host {key}: no address", kind="dns")
            self._pins[key] = found
        return self._pins[key]

    def pinned(self, host: str) -> tuple[str, ...] | None:
        """The judged addresses of `host`, or None when it was never judged (do not connect)."""
        return self._pins.get(_host_key(host))

    def judge_hop(self, source: str, location: str) -> UrlJudgement:
        """Judge a redirect before anything connects to it (judge_hop with this gate)."""
        return judge_hop(source, location, self)

    def private_address(self, host: str) -> str:
        """The first address of `host` the API could not reach, or '' when all are public."""
        networks = [ipaddress.ip_network(n, strict=False) for n in self.public_networks]
        for raw in self.addresses(host):
            try:
                address = ipaddress.ip_address(raw.split("%")[0])
            except ValueError:
                return raw  # not an IP address at all: nothing we can call public
            if not (address.is_global or any(address in net for net in networks)):
                return str(address)
        return ""


@dataclass(frozen=True)
class UrlJudgement:
    violations: list[Violation]
    warnings: list[Violation]


@dataclass(frozen=True)
class UrlFacts:
    """What the url rules judge: the URL, what its host resolved to and when, and what fetching it
    found (None when nothing was fetched: the URL cannot or must not be)."""

    url: str  # as given; the rules never quote its credentials
    private_address: str = ""  # the first address of its host the API cannot reach ('' if none)
    allow_private: bool = False  # the caller checks a lab URL on purpose: private only warns
    checked_at: datetime = field(default_factory=lambda: utcnow())  # presigned expiry's "now"
    remote: RemoteInfo | None = None


def private_address_of(url: str, gate: UrlGate) -> str:
    """Resolve `url`'s host through `gate` (which pins the addresses for the connection) and give
    the first one the API cannot reach, or ''. Nothing is resolved for a URL the rules refuse
    anyway (not http(s), no host). Raises NetworkError (kind dns) when the host does not resolve.
    """
    if _scheme_of(url) not in ("http", "https"):
        return ""
    host = host_of(url)
    return gate.private_address(host) if host is not None else ""


def _scheme_of(url: str) -> str:
    """The scheme, lower-cased, or '' (unlike urlsplit this never raises, whatever the URL)."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def judge_before_fetch(facts: UrlFacts) -> UrlJudgement:
    """Rules that need no request: scheme, host, credentials, a public address, presigned expiry."""
    url = facts.url
    scheme = _scheme_of(url)
    violations: list[Violation] = []
    warnings: list[Violation] = []
    if scheme not in ("http", "https"):
        violations.append(
            Violation(
                "url.scheme",
                f"the scheme is {scheme or 'missing'}: the API fetches only http(s) URLs",
                scheme,
                ["https", "http"],
                "serve the file over https",
            )
        )
        return UrlJudgement(violations, warnings)
    if scheme == "http":
        warnings.append(
            Violation(
                "url.insecure",
                "plain http: the file travels unencrypted and may be altered",
                "http",
                "https",
                "serve the file over https",
            )
        )
    host = host_of(url)
    if host is None:
        violations.append(_no_host("the URL has no usable host (or a bad port)"))
        return UrlJudgement(violations, warnings)
    if has_userinfo(url):
        violations.append(_credentials("the URL carries credentials (user:password@)"))
    private = facts.private_address
    allow_private = facts.allow_private
    if private:
        fix = "upload the file somewhere public (a bucket or CDN)"
        said = f"{host} resolves to {private}, which the API cannot reach from the internet"
        rule = Violation(
            "url.public",
            said if allow_private else f"{said}, and preflight did not connect to it",
            private,
            "a public address",
            fix if allow_private else f"{fix}, or pass --allow-private-urls to check it anyway",
        )
        (warnings if allow_private else violations).append(rule)
    expiry = presigned_expiry(url)
    if expiry is not None:
        left = expiry - facts.checked_at
        if left <= timedelta(0):
            violations.append(
                Violation(
                    "url.expired",
                    f"the presigned URL expired at {expiry:%Y-%m-%d %H:%M:%S} UTC",
                    expiry.isoformat(),
                    "a URL valid for the API's download",
                    "sign a new URL valid for an hour or more",
                )
            )
        elif left < EXPIRY_WARNING:
            warnings.append(
                Violation(
                    "url.expiring",
                    f"the presigned URL expires in {int(left.total_seconds() // 60)} min "
                    f"({expiry:%H:%M:%S} UTC): the API may fetch it later",
                    expiry.isoformat(),
                    "valid for 30 min or more",
                    "sign a URL valid for longer",
                )
            )
    return UrlJudgement(violations, warnings)


def judge_hop(source: str, location: str, gate: UrlGate) -> UrlJudgement:
    """Judge a redirect from `source` to `location` before anything connects to `location`.

    The same rules as for the URL given (scheme, host, credentials, a public address); any
    violation means the hop is not followed. With `allow_private`, a private hop is a warning.
    """
    hop = redact_url(location)
    scheme = _scheme_of(location)
    said = f"{redact_url(source)} redirects to {hop}"
    if scheme not in ("http", "https"):
        rule = Violation(
            "url.scheme",
            f"{said}: the API follows only http(s) URLs, and preflight did not follow it",
            scheme,
            ["https", "http"],
            "redirect to an https URL",
        )
        return UrlJudgement([rule], [])
    host = host_of(location)
    if host is None:
        return UrlJudgement([_no_host(f"{said}, which has no usable host")], [])
    if has_userinfo(location):
        return UrlJudgement([_credentials(f"{said}, which carries credentials")], [])
    warnings: list[Violation] = []
    if scheme == "http" and _scheme_of(source) == "https":
        warnings.append(
            Violation(
                "url.insecure",
                f"{said}: plain http, so the file travels unencrypted and may be altered",
                "http",
                "https",
                "redirect to https",
            )
        )
    private = gate.private_address(host)
    if not private:
        return UrlJudgement([], warnings)
    if gate.allow_private:
        rule = Violation(
            "url.public",
            f"{said}, a private address ({private}) the API cannot reach from the internet",
            private,
            "a public address",
            "redirect to a public address (a bucket or CDN)",
        )
        return UrlJudgement([], [*warnings, rule])
    rule = Violation(
        "url.public",
        f"{said}, a private address ({private}): the API cannot reach it, and preflight did not "
        "connect to it",
        private,
        "a public address",
        "redirect to a public address (a bucket or CDN), or pass --allow-private-urls",
    )
    return UrlJudgement([rule], warnings)


def _no_host(message: str) -> Violation:
    return Violation("url.host", message, "no host", "a host name or address", "check the URL")


def _credentials(message: str) -> Violation:
    return Violation(
        "url.credentials",
        f"{message}: the API fetches without them, and preflight does not send, print or "
        "store them",
        "user:password@",
        "no credentials in the URL",
        "make the URL public, or sign it (a presigned URL valid for an hour or more)",
    )


def presigned_expiry(url: str) -> datetime | None:
    """When an S3 (SigV4), GCS (V4) or CloudFront/S3-v2 signed URL stops working, if it is one."""
    try:
        query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    except ValueError:  # a netloc urlsplit refuses: no expiry to read
        return None
    for prefix in ("x-amz", "x-goog"):
        date, expires = query.get(f"{prefix}-date"), query.get(f"{prefix}-expires")
        if date and expires:
            try:
                signed = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                return signed + timedelta(seconds=int(expires))
            except ValueError:
                return None
    if "expires" in query:  # CloudFront and S3 signature v2: seconds since the epoch
        try:
            return datetime.fromtimestamp(int(query["expires"]), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            return None
    return None


def judge_status(status: int) -> Violation:
    reasons = {
        401: "asks for credentials",
        403: "refuses access",
        404: "has no such file",
        410: "says the file is gone",
    }
    why = reasons.get(status, f"answered HTTP {status}")
    return Violation(
        "url.status",
        f"the server {why} (HTTP {status}): the API must fetch it without credentials",
        status,
        "200 or 206",
        "make the URL public, or sign it (a presigned URL valid for an hour or more)",
    )


def judge_content_type(content_type: str) -> Violation | None:
    mime = content_type.split(";")[0].strip().lower()
    if not mime or mime in VIDEO_TYPES:
        return None
    return Violation(
        "url.content_type",
        f"the server calls it {mime}, not video/mp4 or video/quicktime",
        mime,
        sorted(VIDEO_TYPES),
        "set the object's Content-Type to video/mp4",
    )


def judge_no_range(remote: RemoteInfo) -> Violation | None:
    if remote.range_supported and not remote.prefix_only:
        return None
    size = remote.size_bytes
    # A small file sent whole was read whole, but the API's own fetch of a large one from the
    # same server would be the whole body too: the warning stands either way (issue 22, item 7).
    said = (
        f"judged from the first {remote.transfer.bytes} bytes of "
        f"{size if size is not None else 'an unknown number of'}"
        if remote.prefix_only
        else f"it sent the whole file ({remote.transfer.bytes} bytes) to read its index"
    )
    return Violation(
        "url.no_range",
        f"the server ignores Range requests: {said}",
        "no Range support",
        "Range support",
        "serve the file from a server or bucket that supports Range requests",
    )


def judge_url(facts: UrlFacts) -> UrlJudgement:
    """Every url rule but url.no_range (reported last, after the media's warnings), in report
    order: the rules judged before fetching, a refused redirect or the HTTP status, then the
    Content-Type of an answer that held the file."""
    before = judge_before_fetch(facts)
    remote = facts.remote
    if remote is None:
        return before
    violations = [*before.violations, *remote.refused]
    warnings = _with_hop_warnings(before.warnings, remote.hop_warnings)
    if 400 <= remote.status < 500:
        violations.append(judge_status(remote.status))
    elif not remote.refused:
        content = judge_content_type(remote.content_type)
        if content is not None:
            warnings.append(content)
    return UrlJudgement(violations, warnings)


def _with_hop_warnings(warnings: list[Violation], hops: list[Violation]) -> list[Violation]:
    """The URL's warnings, then what the redirect hops added: one per rule and address, so three
    hops on the same private host warn once, and a hop to another address warns of it."""
    seen = {(w.rule, str(w.actual)) for w in warnings}
    out = list(warnings)
    for warning in hops:
        if (warning.rule, str(warning.actual)) not in seen:
            seen.add((warning.rule, str(warning.actual)))
            out.append(warning)
    return out


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
