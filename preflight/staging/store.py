"""The one boto3 importer: find an object, upload one (multipart when large), presign a GET.

Credentials, region and endpoint come from boto3's own chain (environment, ~/.aws/config,
AWS_ENDPOINT_URL); every botocore failure leaves here as a StagingError whose text has no secret.
"""

from __future__ import annotations

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


class Bucket:
    """One bucket on the storage the AWS chain points at."""

    def __init__(self, name: str) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise UsageError("staging needs boto3: pip install 'preflight[s3]'") from None
        self.name = name
        # SigV4 everywhere: the presigned URL must be one every S3-compatible server accepts.
        config = Config(
            signature_version="s3v4",
            connect_timeout=_CONNECT_TIMEOUT_S,
            read_timeout=_READ_TIMEOUT_S,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        try:
            self.client: S3Client = boto3.client("s3", config=config)
        except Exception as exc:  # botocore: no region, a bad endpoint URL, a bad profile
            raise StagingError(f"cannot set up the S3 client: {_describe(exc)}") from None

    def exists(self, key: str) -> bool:
        """HEAD the key: True if it is there; a missing bucket or refused credentials raise."""
        from botocore.exceptions import ClientError

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
        from botocore.exceptions import ClientError

        where = f"s3://{self.name}/{key}"
        if isinstance(exc, ClientError) and _status(exc) == 404:
            return StagingError(f"{doing} {where}: no such bucket", kind="no_bucket")
        if isinstance(exc, ClientError) and _status(exc) in (401, 403):
            return StagingError(
                f"{doing} {where}: the storage refused the credentials (HTTP {_status(exc)})",
                kind="auth",
            )
        return StagingError(f"{doing} {where}: {_describe(exc)}")


def _status(exc: Any) -> int | None:
    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    return int(status) if status is not None else None


def _describe(exc: Exception) -> str:
    # botocore's messages name the operation, the endpoint and the error code, never the secret
    # key (a SigV4 signature is derived from it, and botocore does not print signatures).
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
