"""The SQL the Ledger reads sessions and attempts with, written once and filled in per dialect,
and the database's clock as SQL (on PostgreSQL every time the ledger compares or writes is the
server's now(), never the host's: hosts need not agree on the time).
"""

from __future__ import annotations

from datetime import timedelta

from .backend import Dialect
from .rows import STAMP_FORMAT

SESSION_LIFETIME = timedelta(hours=24)
LIFETIME_S = int(SESSION_LIFETIME.total_seconds())
_PG_FORMAT = '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\''
# now() in the ledger's stamp format, and 24 h before it: the server's clock, as text.
PG_NOW = f"to_char(now() AT TIME ZONE 'UTC', {_PG_FORMAT})"
PG_DAY_AGO = f"to_char((now() AT TIME ZONE 'UTC') - interval '{LIFETIME_S} seconds', {_PG_FORMAT})"

# Every session the ledger knows: the sessions table, and a session that only lives on its
# attempt row (a ledger written by a preflight that recorded the two in separate transactions
# and failed in between, e.g. on a full disk). It expires 24 h after that attempt finished.
_KNOWN_SESSIONS = """
WITH known AS (
    SELECT session_id, source, source_key, attempt_id, created_at, expires_at, fps,
        original_duration, width, height, total_frame, normalized_video,
        final_unit_deduction, request_id, duration_bucket, key_fingerprint, api_base,
        contended, {seq} AS seq
    FROM sessions
    UNION ALL
    SELECT a.session_id, a.source, a.source_key, a.id, a.finished_at, {expires},
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, a.request_id, NULL, a.key_fingerprint,
        a.api_base, 0, -a.id
    FROM attempts a
    WHERE a.state = 'ok' AND a.session_id IS NOT NULL AND a.finished_at IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = a.session_id)
)
SELECT * FROM known
"""
# What differs between the two ledgers' SQL: how a stamp gets 24 h later, the sessions' order.
KNOWN_SESSIONS: dict[Dialect, str] = {
    "sqlite": _KNOWN_SESSIONS.format(
        seq="rowid",
        expires=f"strftime('{STAMP_FORMAT}', a.finished_at, '+{LIFETIME_S} seconds')",
    ),
    "postgresql": _KNOWN_SESSIONS.format(
        seq="seq",
        expires="to_char((a.finished_at::timestamptz AT TIME ZONE 'UTC')"
        f" + interval '{LIFETIME_S} seconds', {_PG_FORMAT})",
    ),
}
GREATEST: dict[Dialect, str] = {"sqlite": "max", "postgresql": "greatest"}

FINISH = (
    "UPDATE attempts SET state = ?, finished_at = {now},"
    " http_status = coalesce(?, http_status), code = coalesce(?, code),"
    " message = coalesce(?, message), request_id = coalesce(?, request_id),"
    " session_id = coalesce(?, session_id), ambiguous = {greatest}(ambiguous, ?),"
    " cross_check = coalesce(?, cross_check) WHERE id = ?"
)
INSERT_ATTEMPT = (
    "INSERT INTO attempts (source, source_key, attempt_no, state, started_at, request_body,"
    " facts, verdict, api_base, key_fingerprint, host, pid, nonce)"
    " VALUES (?, ?, ?, ?, {now}, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (nonce) DO NOTHING"
)
# The same session recorded twice keeps its first record: the call is idempotent.
INSERT_SESSION = (
    "INSERT INTO sessions (session_id, source, source_key, attempt_id, created_at,"
    " expires_at, fps, original_duration, width, height, total_frame,"
    " normalized_video, final_unit_deduction, request_id, data, duration_bucket,"
    " key_fingerprint, api_base, contended)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id) DO NOTHING"
)
# Attempts that may have billed: listed by `sessions --attempts`, newest first.
RISKY_STATES = ("sending", "ambiguous", "contended")
