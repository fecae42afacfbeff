"""stage_file(): check a local video, upload it once under its content hash, presign, re-check.

Nothing is uploaded unless the local check passed; what is reported is the check of the presigned
URL itself, read with preflight's own Range reader, so it is what the API will fetch.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import UsageError, VideoRejected, VideoUnreadable
from ..pipeline import CheckOptions, check_one
from ..policy import Policy, load_policy
from ..verdict import Result

# The API fetches the video some time after init, so a URL shorter than an hour is a trap.
DEFAULT_EXPIRES_S = 3600
_MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4's own upper bound
_CONTENT_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime"}
_TARGET = re.compile(r"s3://([^/?#]*)(/[^?#]*)?", re.IGNORECASE | re.DOTALL)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
# S3 keys are at most 1024 bytes; the key adds /<64 hex sha256>/<file name> to the prefix.
_MAX_PREFIX_BYTES = 512

__all__ = ["DEFAULT_EXPIRES_S", "StageResult", "parse_target", "stage_file"]


@dataclass
class StageResult:
    source: str  # the local file named
    bucket: str
    key: str
    url: str  # the presigned GET
    expires_at: datetime
    sha256: str
    uploaded: bool  # False when the same bytes were already there
    check: Result  # the check of `url`, not of the local file

    @property
    def object_url(self) -> str:
        """s3://BUCKET/KEY: the object's name for ledgers and reports, with no live signature
        (the presigned `url` is a bearer credential until it expires)."""
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "bucket": self.bucket,
            "key": self.key,
            "url": self.url,
            "expires_at": self.expires_at.isoformat(),
            "sha256": self.sha256,
            "uploaded": self.uploaded,
            "check": self.check.to_dict(),
        }


def parse_target(target: str) -> tuple[str, str]:
    """s3://BUCKET/PREFIX/ -> (bucket, prefix ending in / or empty).

    Refused here, before anything is checked or sent (UsageError, exit 2): anything but a plain
    bucket name (S3's rules: 3-63 of a-z 0-9 . -, a letter or digit at each end; so no port, no
    `user:password@`, no space), and a prefix with `.`/`..`/empty segments, a backslash or a
    control character, which stores would resolve, refuse or keep verbatim as they each like.
    A target with '@' is refused without being shown (it may hold a password).
    """
    if "@" in target:
        # Most likely user:password@, and a password may hold '/' or '#': nothing of it is shown.
        raise UsageError(
            "--to/--stage: the target holds '@' (user:password@?), so it is not used nor shown; "
            "credentials do not go in it: the storage's keys come from the AWS chain "
            "(AWS_ACCESS_KEY_ID, ...)"
        )
    shown = ascii(target)[1:-1] if not target.isprintable() else target
    match = _TARGET.fullmatch(target)
    if match is None:
        raise UsageError(f"--to/--stage {shown}: give s3://BUCKET/PREFIX/")
    netloc, path = match.group(1), match.group(2) or ""
    if not _BUCKET.fullmatch(netloc) or ".." in netloc:
        raise UsageError(
            f"--to/--stage {shown}: {netloc!a} is not a bucket name (3-63 characters: "
            "a-z, 0-9, '.', '-'; no port: the endpoint is AWS_ENDPOINT_URL)"
        )
    prefix = path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    segments = prefix.split("/")[:-1]
    if any(s in ("", ".", "..") for s in segments) or not prefix.isprintable() or "\\" in prefix:
        # Not printable: control characters, and the \udcXX of bytes that are not UTF-8.
        raise UsageError(
            f"--to/--stage {shown}: the prefix may not hold '.' or '..' segments, '//', a "
            "backslash, control characters or bytes that are not UTF-8"
        )
    if len(prefix.encode()) > _MAX_PREFIX_BYTES:
        raise UsageError(f"--to/--stage: the prefix is longer than {_MAX_PREFIX_BYTES} bytes")
    return netloc, prefix


def stage_file(
    path: str | os.PathLike[str],
    target: str,
    *,
    policy: Policy | None = None,
    options: CheckOptions | None = None,
    expires_s: int = DEFAULT_EXPIRES_S,
) -> StageResult:
    """Check, upload (once per content), presign and re-check one local file.

    Raises VideoRejected / VideoUnreadable (nothing uploaded), UsageError or StagingError.
    """
    from .store import Bucket

    if not DEFAULT_EXPIRES_S <= expires_s <= _MAX_EXPIRES_S:
        raise UsageError(
            f"--expires must be {DEFAULT_EXPIRES_S} to {_MAX_EXPIRES_S} seconds (1 h to 7 days)"
        )
    bucket_name, prefix = parse_target(target)
    policy = policy or load_policy()
    options = options or CheckOptions()
    name = os.fspath(path)
    local = check_one(name, policy, options=options)
    _raise_unless_passed(local, "nothing was uploaded")
    sha256 = _sha256(name)
    key = f"{prefix}{sha256}/{os.path.basename(name)}"
    container = local.facts.container if local.facts else ""
    bucket = Bucket(bucket_name, deadline_s=options.remote.deadline_s)
    uploaded = False
    if not bucket.exists(key):
        bucket.upload(name, key, _CONTENT_TYPES.get(container, "application/octet-stream"))
        uploaded = True
    expires_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=expires_s)
    url = bucket.presign(key, expires_s)
    # The remote check never reads the cache: the object, not the local file, is under test.
    remote = check_one(url, policy, options=options)
    return StageResult(
        source=name,
        bucket=bucket_name,
        key=key,
        url=url,
        expires_at=expires_at,
        sha256=sha256,
        uploaded=uploaded,
        check=remote,
    )


def _raise_unless_passed(result: Result, consequence: str) -> None:
    if result.verdict == "reject":
        first = result.violations[0].message if result.violations else "rejected"
        raise VideoRejected(f"the pre-flight rejected the video, {consequence}: {first}", result)
    if result.verdict == "error":
        error = result.error
        raise VideoUnreadable(
            f"the video could not be probed, {consequence}: "
            + (error.message if error else "unreadable"),
            result,
            kind=error.kind if error else None,
        )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
