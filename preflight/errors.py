"""The one exception hierarchy of preflight: every error the library raises is a PreflightError.

The CLI maps these types to exit codes and one-line messages (see status.py); a traceback is a bug.
"""

from __future__ import annotations

# Every `kind` a check Result's error may carry (README "JSON output"); nothing else is documented.
ERROR_KINDS = (
    "missing",  # no such file
    "not_a_file",  # a folder, a device, a socket
    "permission",  # the file cannot be opened for reading
    "empty",  # 0 bytes
    "not_media",  # no known container, or not a file whose index can be read
    "no_moov",  # MP4/MOV without an index (never finalised)
    "truncated",  # the index points past the end of the file
    "bad_index",  # the index is malformed or contradicts itself
    "timeout",  # a backend or the network took too long
    "resource_limit",  # a backend went past its memory bound, or its child process died
    "unreadable",  # a backend could not read it, or another read failure
    "backend_missing",  # MediaInfo or ffprobe is not installed
    "network",  # URL: refused, reset, cut short
    "dns",  # URL: the host name does not resolve
    "redirects",  # URL: more than 5 redirects, or a loop
    "http_status",  # URL: 5xx after retries (a 4xx is a url.status reject)
    "no_range",  # URL: no Range support and the index is past the prefix read
)


class PreflightError(Exception):
    """Base of every error preflight raises on purpose."""


class UsageError(PreflightError):
    """The caller asked for something that cannot be done as asked (bad option, bad policy file)."""


class PolicyError(UsageError):
    """A policy file is missing, is not JSON, or breaks preflight/schemas/policy.schema.json."""


class ProbeError(PreflightError):
    """A source could not be read as media; `kind` is a stable id such as `missing`, `truncated`.

    Kinds: missing, not_a_file, permission, empty, not_media, no_moov, truncated, bad_index,
    unreadable, backend_missing; and for a backend parse that overran its bounds (ProbeLimits):
    `timeout` (past --probe-timeout) and `resource_limit` (past --probe-memory-mib, or the parser
    crashed). Retrying either gives the same answer: the file, not the moment, is the cause.
    """

    kind = "unreadable"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class VideoRejected(PreflightError):
    """`init` refused to send: the pre-flight rejected the video. `result` is the check Result."""

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result


class VideoUnreadable(ProbeError):
    """`init` refused to send: the video could not be probed. `result` is the check Result."""

    def __init__(self, message: str, result: object, *, kind: str | None = None) -> None:
        super().__init__(message, kind=kind)
        self.result = result


class NetworkError(PreflightError):
    """A network call failed: refused, timed out, or answered with something unusable.

    `kind` is a stable id: network, timeout, redirects, http_status, dns, no_range.
    """

    kind = "network"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
