"""Every exception preflight raises on purpose, under one base, PreflightError (requests' shape).

Each docstring's first line says whether the failed operation is safe to retry. The CLI maps these
types to exit codes and one-line messages (see status.py); a traceback is a bug. Cheap to import:
nothing here loads requests or SQLite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeGuard, get_args

if TYPE_CHECKING:
    from .verdict import Result

# Every `kind` a check Result's error may carry (README "JSON output"); nothing else is documented.
ErrorKind = Literal[
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
    "worker",  # --dask: the source's task failed on every worker the scheduler tried
    "kling_source",  # a kling: source that is not kling:TASK_ID/VIDEO_ID
    "no_key",  # a kling: source and no API key to look its task up with
    "task_query",  # the API refused or failed the Kling task query (the message names why)
]
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)


def is_error_kind(value: str) -> TypeGuard[ErrorKind]:
    return value in ERROR_KINDS


# Every `kind` of an `init` error (README "init"): what the API said, or what became of the ledger.
ApiErrorKind = Literal[
    "auth",
    "account",
    "arrears",
    "quota",
    "permission",
    "invalid",
    "not_found",
    "policy",
    "content",
    "rate_limit",
    "allow_list",
    "server",
    "network",
    "refused",  # a 2xx whose data.status is not 0: the API refused the video itself
    "protocol",  # an answer this client does not understand
    "ambiguous",  # the request may have reached the API and billed, and no answer said so
]
_API_HINTS: dict[ApiErrorKind, str] = {
    "auth": "the API key was refused: check COMETAPI_KEY or --api-key-file",
    "account": "the account has a problem: check it on the CometAPI dashboard",
    "arrears": "the account is in arrears: top up your credit",
    "quota": "the resource pack is used up or expired: buy or renew one",
    "permission": "the plan has no access to this model or route: check the plan",
    "invalid": "the request was refused as invalid: see the message for the parameter",
    "not_found": "the video or task does not exist (video_id must be from the last 30 days)",
    "policy": "the platform's policy refused the request",
    "content": "the content safety check failed: change the content",
    "rate_limit": "rate limited: wait a little and try again",
    "allow_list": "this IP address is not on the account's allow-list",
    "server": "the API failed on its side: try again later",
    "network": "the API could not be reached: check the network and --api-base",
    "refused": "the API refused the video: see the message",
    "protocol": "the API answered something this client does not understand",
    "ambiguous": "a session may have been opened and billed: `preflight sessions --attempts`"
    " shows the attempt; --force sends again",
}


class PreflightError(Exception):
    """Base of every error preflight raises on purpose; whether a retry is safe is per subclass."""

    @property
    def hint(self) -> str:
        """What the user can do about it, where the error type knows ("" where it does not)."""
        return ""


class UsageError(PreflightError):
    """Nothing was done, so a retry is safe but fails alike until the caller changes what it asks.

    The caller asked for something that cannot be done as asked (bad option, bad policy file).
    """


class ClusterError(UsageError):
    """Nothing was checked: safe to retry once the Dask scheduler can be reached (exit 2).

    `check --dask ADDRESS` could not connect within the connect timeout, the address is not one
    Dask understands, or the `dask` extra is not installed.
    """


class PolicyError(UsageError):
    """Safe to retry once the policy is fixed: it is missing, not JSON, or breaks its schema.

    The schema is schemas/policy.schema.json.
    """


class ProbeError(PreflightError):
    """Safe to retry (reading is read-only) but pointless: the file, not the moment, is the cause.

    `kind` is a stable id: missing, not_a_file, permission, empty, not_media, no_moov, truncated,
    bad_index, unreadable, backend_missing; and for a backend parse that overran its bounds
    (ProbeLimits): `timeout` (past --probe-timeout) and `resource_limit` (past
    --probe-memory-mib, or the parser crashed).
    """

    kind: ErrorKind = "unreadable"

    def __init__(self, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class VideoRejected(PreflightError):
    """`init` sent nothing, the pre-flight rejected the video: a retry is refused alike.

    `result` is the check Result that says why.
    """

    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result


class VideoUnreadable(ProbeError):
    """`init` sent nothing, the video could not be probed: a retry is refused alike.

    `result` is the check Result that says why.
    """

    def __init__(self, message: str, result: Result, *, kind: str | None = None) -> None:
        # `kind` is the check Result's error kind: check_one only ever gives an ErrorKind (the
        # `internal` of a caught bug is the batch's and watch's, never check_one's).
        super().__init__(message, kind=kind if kind is None or is_error_kind(kind) else None)
        self.result = result


class NetworkError(PreflightError):
    """Safe to retry (every fetch is a read); a retry may succeed unless `kind` is `redirects`.

    A network call failed: refused, timed out, or answered with something unusable. `kind` is a
    stable id: network, timeout, redirects, http_status, dns, no_range.
    """

    kind: ErrorKind = "network"

    def __init__(self, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class ApiError(PreflightError):
    """Safe to retry only if `retryable` and not `after_send`: a sent request may have billed.

    The API refused or failed. Carries what the server said; never the key. The init client
    already retried what was safe, and never a request whose answer was lost after it left
    (kind `ambiguous`: it may have opened and billed a session).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ApiErrorKind,
        http_status: int | None = None,
        code: int | str | None = None,
        api_message: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        after_send: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.http_status = http_status
        self.code = code
        self.api_message = api_message
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.after_send = after_send  # the body reached the server; a session may exist
        self.attempts = 1
        self.ambiguous = False

    @property
    def hint(self) -> str:
        return _API_HINTS.get(self.kind, "")

    @property
    def retryable(self) -> bool:
        # Terminal 429 codes (1100-1102, 1304) have kinds of their own, so rate_limit is only
        # 1302/1303, a 429 without a Kling code, or CometAPI's own rate limit.
        return self.kind in ("rate_limit", "server", "network")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": str(self),
            "http_status": self.http_status,
            "code": self.code,
            "api_message": self.api_message,
            "request_id": self.request_id,
            "hint": self.hint,
            "attempts": self.attempts,
            "ambiguous": self.ambiguous,
        }


class LedgerError(PreflightError):
    """Nothing was sent or billed: safe to retry once the ledger can be opened and written.

    Not a SQLite file, unwritable, a newer schema, or a full disk. Raised only before a request
    goes out; a ledger that fails after one is SessionUnrecorded.
    """


class LedgerBusy(LedgerError):
    """Nothing was sent: safe to retry; the lock holder's session, if any, is then reused.

    Another process held the lock on a source for longer than we were willing to wait.
    """


class LedgerUnavailable(LedgerError):
    """Nothing was sent: safe to retry once the ledger's server answers again.

    The connection to a PostgreSQL ledger was lost, refused, or went silent past its read bound,
    and reconnecting with back-off did not bring it back within the ledger's retry time.
    """


class ClaimLost(LedgerError):
    """Nothing was sent: safe to retry; the claim on the source was taken over before sending.

    This process stopped renewing its claim long enough (paused, cut off from the ledger) that
    another took it over; checked right before each request, so this request never left.
    """


class UnsettledAttempt(PreflightError):
    """Not safe to retry as is: an earlier attempt on this source and account may have billed.

    A row in state `sending` or `ambiguous`, younger than a session's lifetime, with no session
    recorded: its process died, was paused past its claim, or lost the answer. `--force` sends
    again; `preflight sessions import ID --source SRC` records the session if its id is known.
    The CLI exits 4 with kind `ambiguous`.
    """

    kind = "ambiguous"

    def __init__(self, message: str, *, source: str, attempt: dict[str, Any]) -> None:
        super().__init__(message)
        self.source = source
        self.attempt = attempt  # id, state, host, pid, started_at, request_id of the earlier one

    @property
    def hint(self) -> str:
        import shlex  # here, not at the top: this module stays cheap to import

        return (
            "--force sends again (and may pay twice); if you know the session's id, record it "
            f"with: preflight sessions import ID --source {shlex.quote(self.source)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": str(self),
            "session_id": None,
            "request_id": self.attempt.get("request_id"),
            "hint": self.hint,
            "attempts": 0,
            "ambiguous": True,
            "earlier_attempt": self.attempt,
        }


class SessionUnrecorded(PreflightError):
    """Not safe to retry: a session was (or may have been) opened and billed, unknown to the ledger.

    The ledger failed after a billed request was sent: the session the API opened (if
    `session_id` is set) or may have opened is not recorded, so a later `init` cannot reuse it
    and would pay again. The CLI exits 4 with kind `unrecorded` and prints the session id, the
    only record of it left.
    """

    kind = "unrecorded"

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None,
        request_id: str | None = None,
        attempts: int = 1,
        ambiguous: bool = False,
        source: str | None = None,
        disk_full: bool = False,
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.request_id = request_id
        self.attempts = attempts
        self.ambiguous = ambiguous
        self.source = source
        self.disk_full = disk_full

    @property
    def hint(self) -> str:
        import shlex  # here, not at the top: this module stays cheap to import

        if self.session_id:
            fix = "free space on the ledger's disk, then " if self.disk_full else ""
            return (
                f"keep this session id: {fix}record it with: preflight sessions import "
                f"{shlex.quote(self.session_id)} --source {shlex.quote(self.source or 'SOURCE')}"
            )
        return "see preflight sessions --attempts: a session may have been opened and billed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": str(self),
            "session_id": self.session_id,
            "request_id": self.request_id,
            "hint": self.hint,
            "attempts": self.attempts,
            "ambiguous": self.ambiguous,
        }


class StagingError(PreflightError):
    """Safe to retry: the upload is keyed by content, so a retry never stores the bytes twice.

    `preflight stage` could not reach or use the S3-compatible storage: `kind` is `auth` (the
    credentials were refused), `no_bucket`, or `storage` (anything else). Never holds a secret.
    """

    def __init__(self, message: str, *, kind: str = "storage") -> None:
        super().__init__(message)
        self.kind = kind
