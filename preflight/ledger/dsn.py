"""The text that names a PostgreSQL ledger: which locations are DSNs, the password one holds,
and the DSN masked to print. No connection here, so the SQLite store and the CLI can ask.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

DSN_SCHEMES = ("postgresql://", "postgres://")


def is_dsn(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(DSN_SCHEMES)


# The password of a URL DSN (user:PASSWORD@) or of a key=value one, found without parsing it:
# a DSN psycopg cannot parse still names its password in psycopg's message.
_URL_PASSWORD = re.compile(r"^[a-z]+://[^/@?#]*?:([^/?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?:[?&]|^|\s)password\s*=\s*'?([^&\s']+)")


def dsn_password(dsn: str) -> str | None:
    """The password written inside a DSN, if any (what `ps` shows of an argument)."""
    found = _URL_PASSWORD.match(dsn) or _QUERY_PASSWORD.search(dsn)
    return found.group(1) if found and found.group(1) else None


def masked(dsn: str) -> str:
    """The DSN without its password, to print and to name the ledger in errors. Never raises."""
    try:
        return _masked(dsn)
    except ValueError:  # not a URL urllib can split ([::1 unclosed, say): hide what we found
        text = dsn
        for secret in secrets_of(dsn):
            text = text.replace(secret, "***")
        return text


def _masked(dsn: str) -> str:
    # Here, not at the top: urllib.parse loads ipaddress, and a cached local check, which asks
    # is_dsn of its ledger path, needs neither.
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of(dsn: str) -> list[str]:
    """Every spelling of the DSN's password, to hide wherever the DSN's text could show."""
    from urllib.parse import unquote

    found = dsn_password(dsn)
    # Longest first, so a decoded password is not left half-replaced by its encoded form.
    out = {found, unquote(found)} if found else set()
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
        if password:
            out.add(str(password))
    except Exception:  # a DSN psycopg cannot parse: the regex's finding is all there is
        pass
    return sorted(out, key=len, reverse=True)
