"""`preflight stage`: a local video, checked, uploaded to S3-compatible storage, presigned, checked
again as a URL.

stage.py owns the flow (check -> hash -> upload once -> presign -> check the URL); store.py is the
only module that imports boto3 (the `s3` extra).
"""

from __future__ import annotations

from ..errors import StagingError
from .stage import DEFAULT_EXPIRES_S, StageResult, parse_target, stage_file

__all__ = ["DEFAULT_EXPIRES_S", "StageResult", "StagingError", "parse_target", "stage_file"]
