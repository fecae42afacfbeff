"""The tables both ledgers share (attempts, sessions, the probe cache), their version and the
migrations between versions, written once with each dialect's column types filled in.

Same names and meaning in SQLite and PostgreSQL, so rows and JSON are the same from either; stamps
stay text in rows.STAMP_FORMAT. Each backend adds its own lock tables (store.py, pg.py).
"""

from __future__ import annotations

from ..errors import LedgerError

SCHEMA_VERSION = 3

# As version 1 made it; migration 3 adds `thumbnail`.
PROBE_CACHE = """CREATE TABLE IF NOT EXISTS probe_cache (
    key TEXT PRIMARY KEY,
    facts TEXT NOT NULL,
    disagreements TEXT NOT NULL,
    stored_at TEXT NOT NULL
)"""

# What brings a ledger of version N-1 to N: a new ledger is made at version 1 and walks them too,
# so an old file and a new one end with the same columns. Rows written before keep NULLs.
MIGRATIONS: dict[int, tuple[str, ...]] = {
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
}


def upgrade_steps(version: int, schema: str, where: object) -> list[tuple[int, list[str]]]:
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
    steps += [(step, list(MIGRATIONS[step])) for step in range(version + 1, SCHEMA_VERSION + 1)]
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
