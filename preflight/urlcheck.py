"""The `url` rule family: what makes a URL one the API can fetch, judged before and after we fetch.

Scheme, public address, HTTP status, presigned-URL expiry and Content-Type; pure functions here.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from .errors import NetworkError, UsageError
from .verdict import Violation

EXPIRY_WARNING = timedelta(minutes=30)
VIDEO_TYPES = {"video/mp4", "video/quicktime", "application/octet-stream"}


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://")) or "://" in source[:12]


@dataclass(frozen=True)
class UrlJudgement:
    violations: list[Violation]
    warnings: list[Violation]


def judge_before_fetch(url: str, *, allow_private: bool, now: datetime) -> UrlJudgement:
    """Rules that need no request: scheme, a public address, presigned expiry."""
    parts = urlsplit(url)
    violations: list[Violation] = []
    warnings: list[Violation] = []
    if parts.scheme not in ("http", "https"):
        violations.append(
            Violation(
                "url.scheme",
                f"the scheme is {parts.scheme or 'missing'}: the API fetches only http(s) URLs",
                parts.scheme,
                ["https", "http"],
                "serve the file over https",
            )
        )
        return UrlJudgement(violations, warnings)
    if parts.scheme == "http":
        warnings.append(
            Violation(
                "url.insecure",
                "plain http: the file travels unencrypted and may be altered",
                "http",
                "https",
                "serve the file over https",
            )
        )
    host = parts.hostname or ""
    if not host:
        raise UsageError(f"the URL has no host: {url}")
    private = private_address(host)
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


def private_address(host: str) -> str:
    """The first non-public address `host` resolves to, or '' when all are public."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError(f"cannot resolve host {host}: {exc}", kind="dns") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return str(address)
    return ""


def presigned_expiry(url: str) -> datetime | None:
    """When an S3 (SigV4), GCS (V4) or CloudFront/S3-v2 signed URL stops working, if it is one."""
    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
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
