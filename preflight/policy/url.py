"""The `url` rule family: what makes a URL one the API can fetch, judged before and after we fetch.

Scheme, host, credentials, public address (of the URL and of every redirect hop, with the judged
addresses pinned for the connection), HTTP status, presigned-URL expiry and Content-Type.
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
from ..verdict import Violation

EXPIRY_WARNING = timedelta(minutes=30)
VIDEO_TYPES = {"video/mp4", "video/quicktime", "application/octet-stream"}
# Rules after which nothing is fetched: the URL cannot be fetched, or fetching would send secrets.
UNFETCHABLE = frozenset({"url.scheme", "url.host", "url.credentials"})
# scheme://userinfo@ — greedy up to the last @ before the path, as URL parsers split it.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:)?//[^/?#]*@")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")

Resolver = Callable[[str], Sequence[str]]


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://")) or "://" in source[:12]


def redact_url(url: str) -> str:
    """`url` with any userinfo replaced by `***`: what may be printed, logged or stored.

    The whole userinfo goes, the user name too: a token is often sent as the user name alone.
    """
    match = _USERINFO.match(url)
    if match is None:
        return url
    return f"{match.group(1) or ''}//***@{url[match.end() :]}"


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


def host_of(url: str) -> str | None:
    """The host of `url`, or None when it has none or cannot be parsed (a bad port, a bad [v6])."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return None
    return parts.hostname or None


def _scheme_of(url: str) -> str:
    """The scheme, lower-cased, or '' (unlike urlsplit this never raises, whatever the URL)."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def _has_userinfo(url: str) -> bool:
    return _USERINFO.match(url) is not None


def judge_before_fetch(
    url: str, *, allow_private: bool, now: datetime, gate: UrlGate | None = None
) -> UrlJudgement:
    """Rules that need no request: scheme, host, credentials, a public address, presigned expiry.

    With a `gate`, the host's addresses are resolved and remembered there for the connection.
    """
    gate = gate or UrlGate(allow_private=allow_private)
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
    if _has_userinfo(url):
        violations.append(_credentials("the URL carries credentials (user:password@)"))
    private = gate.private_address(host)
    if private:
        fix = "upload the file somewhere public (a bucket or CDN)"
        rule = Violation(
            "url.public",
            f"{host} resolves to {private}, which the API cannot reach from the internet",
            private,
            "a public address",
            fix if allow_private else f"{fix}, or pass --allow-private-urls to check it anyway",
        )
        (warnings if allow_private else violations).append(rule)
    expiry = presigned_expiry(url)
    if expiry is not None:
        left = expiry - now
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
    if _has_userinfo(location):
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


def judge_status(status: int, url: str) -> Violation:
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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
