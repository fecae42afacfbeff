"""The tables both ledgers share (attempts, sessions, the probe cache), their version and the
migrations between versions, written once with each dialect's column types filled in.

Same names and meaning in SQLite and PostgreSQL, so rows and JSON are the same from either; stamps
stay text in rows.STAMP_FORMAT. Each backend adds its own lock tables (store.py, pg.py).
"""

from __future__ import annotations

from typing import Literal

from ..errors import LedgerError

SCHEMA_VERSION = 5
UNKNOWN_KEY = "unknown"  # the key fingerprint of rows written before version 4 knew it

# As version 1 made it; migration 3 adds `thumbnail`.
PROBE_CACHE = """CREATE TABLE IF NOT EXISTS probe_cache (
    key TEXT PRIMARY KEY,
    facts TEXT NOT NULL,
    disagreements TEXT NOT NULL,
    stored_at TEXT NOT NULL
)"""

_V4_ATTEMPT_COLUMNS = (
    f"key_fingerprint TEXT NOT NULL DEFAULT '{UNKNOWN_KEY}', host TEXT, pid INTEGER, nonce TEXT"
)
_V4_STATES = "state IN ('sending', 'ok', 'failed', 'ambiguous', 'contended')"
_V4_COMMON = (
    "ALTER TABLE sessions ADD COLUMN api_base TEXT",
    "ALTER TABLE sessions ADD COLUMN contended INTEGER NOT NULL DEFAULT 0",
    f"UPDATE sessions SET key_fingerprint = '{UNKNOWN_KEY}' WHERE key_fingerprint IS NULL",
    "UPDATE sessions SET api_base = (SELECT a.api_base FROM attempts a"
    " WHERE a.id = sessions.attempt_id)",
    # An old attempt that opened a session knew its key through it; the rest stay 'unknown'.
    "UPDATE attempts SET key_fingerprint = coalesce((SELECT max(s.key_fingerprint)"
    f" FROM sessions s WHERE s.attempt_id = attempts.id), '{UNKNOWN_KEY}')",
    "CREATE UNIQUE INDEX attempts_by_nonce ON attempts (nonce)",
    "CREATE INDEX sessions_by_account ON sessions (source_key, api_base, key_fingerprint)",
)


def _attempts_table(name: str, more_states: str, more_columns: str) -> str:
    """The attempts table of version 1 (more_states and more_columns empty) or of version 4."""
    columns = f",\n    {more_columns}" if more_columns else ""
    return f"""CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    attempt_no INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'ok', 'failed', 'ambiguous'{more_states})),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    request_body TEXT NOT NULL,
    facts TEXT,
    verdict TEXT,
    http_status INTEGER,
    code INTEGER,
    message TEXT,
    request_id TEXT,
    session_id TEXT,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    cross_check TEXT NOT NULL DEFAULT '[]',
    api_base TEXT NOT NULL{columns}
)"""


# What brings a ledger of version N-1 to N: a new ledger is made at version 1 and walks them too,
# so an old file and a new one end with the same columns. Rows written before keep NULLs.
MIGRATIONS: dict[int, tuple[str, ...] | dict[str, tuple[str, ...]]] = {
    # What Kling's follow-up calls need of a session (rows.SessionRow).
    2: (
        "ALTER TABLE sessions ADD COLUMN duration_bucket TEXT",
        "ALTER TABLE sessions ADD COLUMN key_fingerprint TEXT",
    ),
    # The HTML report's thumbnail beside the facts of the same file (a JPEG, base64), so a warm
    # `check --html` decodes nothing. A SQLite ledger gets probe_cache on first use of the cache,
    # so the table may not be there yet: it is made first, as the cache would make it.
    3: (
        PROBE_CACHE,
        "ALTER TABLE probe_cache ADD COLUMN thumbnail TEXT",
    ),
    # Reuse and claims are per account (source, API base, key fingerprint); an attempt says who
    # sent it (host, pid) and may end `contended` (sent by a holder whose claim was taken over);
    # its nonce makes writing it idempotent when a lost connection makes us write it again.
    # SQLite cannot change a CHECK in place: the attempts table is rebuilt (store.py turns
    # foreign keys off around it, as SQLite's ALTER TABLE guide says).
    4: {
        "sqlite": (
            _attempts_table("attempts_v4", ", 'contended'", _V4_ATTEMPT_COLUMNS),
            f"INSERT INTO attempts_v4 SELECT *, '{UNKNOWN_KEY}', NULL, NULL, NULL FROM attempts",
            "DROP TABLE attempts",
            "ALTER TABLE attempts_v4 RENAME TO attempts",
            "CREATE INDEX attempts_by_source ON attempts (source_key, id)",
            "ALTER TABLE locks ADD COLUMN owner TEXT",
            *_V4_COMMON,
        ),
        "postgresql": (
            "ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_state_check",
            f"ALTER TABLE attempts ADD CONSTRAINT attempts_state_check CHECK ({_V4_STATES})",
            *(f"ALTER TABLE attempts ADD COLUMN {c}" for c in _V4_ATTEMPT_COLUMNS.split(", ")),
            "ALTER TABLE claims ADD COLUMN token BIGINT NOT NULL DEFAULT 0",
            "CREATE SEQUENCE IF NOT EXISTS claim_tokens",
            *_V4_COMMON,
        ),
    },
    # Which route's query found a Kling task (task_query.py), so a task costs one query GET once
    # known; per API base, since a task id means nothing to another API.
    5: (
        "CREATE TABLE task_actions (api_base TEXT NOT NULL, task_id TEXT NOT NULL,"
        " action TEXT NOT NULL, found_at TEXT NOT NULL, PRIMARY KEY (api_base, task_id))",
    ),
}


def upgrade_steps(
    version: int, schema: str, where: object, dialect: Literal["sqlite", "postgresql"]
) -> list[tuple[int, list[str]]]:
    """What brings a ledger at `version` (0: empty) to SCHEMA_VERSION, as (version, statements)
    a step: version 1 creates `schema` (the dialect's), the rest are MIGRATIONS. LedgerError for
    a ledger newer than this preflight; `where` names it in the message."""
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger {where} has schema version {version}, newer than this "
            f"preflight understands ({SCHEMA_VERSION}): upgrade preflight"
        )
    steps = []
    if version == 0:
        steps.append((1, [s for s in schema.split(";") if s.strip()]))
        version = 1
    for step in range(version + 1, SCHEMA_VERSION + 1):
        statements = MIGRATIONS[step]
        chosen = statements[dialect] if isinstance(statements, dict) else statements
        steps.append((step, list(chosen)))
    return steps


def records(*, id_type: str, ref_type: str, float_type: str, session_extra: str = "") -> str:
    """The attempts and sessions tables (version 1) in one dialect's types.

    The attempt states in the CHECK are rows.AttemptState; the text stays as it is, since SQLite
    keeps it in every ledger file already written.
    """
    return f"""
CREATE TABLE attempts (
    id {id_type},
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    attempt_no INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'ok', 'failed', 'ambiguous')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    request_body TEXT NOT NULL,
    facts TEXT,
    verdict TEXT,
    http_status INTEGER,
    code INTEGER,
    message TEXT,
    request_id TEXT,
    session_id TEXT,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    cross_check TEXT NOT NULL DEFAULT '[]',
    api_base TEXT NOT NULL
);
CREATE INDEX attempts_by_source ON attempts (source_key, id);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    attempt_id {ref_type} NOT NULL REFERENCES attempts (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    fps {float_type},
    original_duration {float_type},
    width INTEGER,
    height INTEGER,
    total_frame INTEGER,
    normalized_video TEXT,
    final_unit_deduction TEXT,
    request_id TEXT,
    data TEXT NOT NULL DEFAULT '{{}}'{session_extra}
);
CREATE INDEX sessions_by_source ON sessions (source_key, expires_at);
"""
