"""The one boto3 importer: find an object, upload one (multipart when large), presign a GET.

Credentials, region and endpoint come from boto3's own chain (environment, ~/.aws/config,
AWS_ENDPOINT_URL); every botocore failure leaves here as a StagingError whose text has no secret,
and a storage that stalls is given up on at the deadline (the `--deadline` of the command).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import StagingError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Multipart above 64 MiB, in 16 MiB parts: few enough requests for a 1 GiB export, and a part
# lost to a dropped connection costs little to send again.
_MULTIPART_THRESHOLD = 64 * 1024 * 1024
_PART_SIZE = 16 * 1024 * 1024
_CONNECT_TIMEOUT_S = 10
_READ_TIMEOUT_S = 60
# Tries of one request (botocore's total_max_attempts): each waits at most a third of the deadline,
# so a stalling storage ends a lookup at about the deadline, not at 4 x 60 s.
_ATTEMPTS = 3
_DEFAULT_DEADLINE_S = 60.0
# //user:password@ inside a URL.
_USERINFO = re.compile(r"//[^/\s\"'@]*@")
# user:password@ anywhere in a message, with or without a scheme before it (botocore quotes an
# endpoint it cannot use as given: "Invalid endpoint: user:password@host").
_ANY_USERINFO = re.compile(r"[^\s\"'/]*@")


class _DeadlinePassed(Exception):
    """Raised before a request would be sent past the lookup's deadline (never retried)."""


class Bucket:
    """One bucket on the storage the AWS chain points at.

    `deadline_s` bounds each lookup (HEAD of the object, then of the bucket), retries included:
    no request starts once it has passed, and each waits at most a third of it. Uploads move the
    file's bytes, so they are bounded per request (the same timeouts), not in all.
    """

    def __init__(self, name: str, *, deadline_s: float = _DEFAULT_DEADLINE_S) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise UsageError("staging needs boto3: pip install 'preflight[s3]'") from None
        self.name = name
        self.deadline_s = deadline_s
        self._ends: float | None = None  # the running lookup's deadline (time.monotonic)
        wait_s = deadline_s / _ATTEMPTS
        # SigV4 everywhere: the presigned URL must be one every S3-compatible server accepts.
        config = Config(
            signature_version="s3v4",
            connect_timeout=min(_CONNECT_TIMEOUT_S, wait_s),
            read_timeout=min(_READ_TIMEOUT_S, wait_s),
            retries={"total_max_attempts": _ATTEMPTS, "mode": "standard"},
        )
        try:
            self.client: S3Client = boto3.client("s3", config=config)
        except Exception as exc:  # botocore: no region, a bad endpoint URL, a bad profile
            raise StagingError(f"cannot set up the S3 client: {_describe(exc)}") from None
        endpoint = str(self.client.meta.endpoint_url)
        if _USERINFO.search(endpoint):
            # It would be sent to the storage, printed in botocore's errors and put in every
            # presigned URL: refused before any request, and never shown.
            raise UsageError(
                "the S3 endpoint URL (AWS_ENDPOINT_URL or endpoint_url in ~/.aws/config) holds "
                "user:password@, which is not used nor shown: the storage's keys come from "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        self.client.meta.events.register("before-send.s3", self._before_send)

    def _before_send(self, **_kwargs: Any) -> None:
        if self._ends is not None and time.monotonic() >= self._ends:
            raise _DeadlinePassed()

    @contextmanager
    def _lookup(self) -> Iterator[None]:
        """Requests inside this block start only before the deadline, counted from here."""
        self._ends = time.monotonic() + self.deadline_s
        try:
            yield
        finally:
            self._ends = None

    def exists(self, key: str) -> bool:
        """HEAD the key: True if it is there; a missing bucket or refused credentials raise."""
        from botocore.exceptions import ClientError

        with self._lookup():
            try:
                self.client.head_object(Bucket=self.name, Key=key)
                return True
            except ClientError as exc:
                if _status(exc) == 404 and self._bucket_exists():
                    return False
                raise self._error("cannot look up", key, exc) from None
            except Exception as exc:
                raise self._error("cannot look up", key, exc) from None

    def upload(self, path: str, key: str, content_type: str) -> None:
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(
            multipart_threshold=_MULTIPART_THRESHOLD, multipart_chunksize=_PART_SIZE
        )
        try:
            self.client.upload_file(
                path,
                self.name,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=transfer,
            )
        except Exception as exc:
            raise self._error("cannot upload to", key, exc) from None

    def presign(self, key: str, expires_s: int) -> str:
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=expires_s
            )
        except Exception as exc:
            raise self._error("cannot presign", key, exc) from None

    def _bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.name)
            return True
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise self._error("cannot look up", "", exc) from None

    def _error(self, doing: str, key: str, exc: Exception) -> StagingError:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        where = f"s3://{self.name}/{key}"
        if isinstance(exc, ClientError) and _status(exc) == 404:
            return StagingError(f"{doing} {where}: no such bucket", kind="no_bucket")
        if isinstance(exc, ClientError) and _status(exc) in (401, 403):
            return StagingError(
                f"{doing} {where}: the storage refused the credentials (HTTP {_status(exc)})",
                kind="auth",
            )
        if isinstance(exc, _DeadlinePassed):
            return StagingError(
                f"{doing} {where}: the storage did not answer within the {self.deadline_s:g} s "
                "deadline (it stalls, or drops the requests; --deadline sets it)"
            )
        if isinstance(exc, ReadTimeoutError):
            each = self.deadline_s / _ATTEMPTS
            return StagingError(
                f"{doing} {where}: connected, but the storage stopped answering (read timeout: "
                f"{_ATTEMPTS} tries of {each:g} s within the {self.deadline_s:g} s deadline; "
                "--deadline sets it)"
            )
        if isinstance(exc, ConnectTimeoutError):
            return StagingError(f"{doing} {where}: could not connect to the storage in time")
        if isinstance(exc, EndpointConnectionError):
            return StagingError(f"{doing} {where}: could not connect to the storage")
        return StagingError(f"{doing} {where}: {_describe(exc)}")


def _status(exc: Any) -> int | None:
    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    return int(status) if status is not None else None


def _describe(exc: Exception) -> str:
    # botocore's messages name the operation, the endpoint and the error code, never the secret
    # key (a SigV4 signature is derived from it, and botocore does not print signatures); an
    # endpoint's user:password@ (refused above, but a profile may hold one) is hidden all the same.
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _ANY_USERINFO.sub("***@", text)
