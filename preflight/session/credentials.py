"""The CometAPI credentials and address: the ApiKey (hidden from repr and str), how it is loaded,
and the API base URL, which must be https unless it points at loopback.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import stat
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError

DEFAULT_API_BASE = "https://api.cometapi.com"
# Versioned, so a later change of scheme gives new fingerprints rather than colliding ones, and
# domain-separated, so the digest is not the plain sha256 of the key that other tools may print.
_FINGERPRINT_PREFIX = "preflight-key-v1:"


class ApiKey:
    """The CometAPI key. Its text is reachable only through header(); repr and str hide it.

    Only printable ASCII without spaces is accepted: that is all an HTTP header value carries
    safely (requests refuses CR/LF, http.client cannot encode beyond Latin-1), and CometAPI keys
    are `sk-...` ASCII. Checking here means a bad key is a usage error before any ledger row.
    """

    __slots__ = ("_pattern", "_value")

    def __init__(self, value: str, *, origin: str = "the API key") -> None:
        problem = _key_problem(value)
        if problem:
            # Never the key's text, not even the offending character: it may be half the key.
            raise UsageError(f"{origin} {problem}: a key is printable ASCII without spaces")
        self._value = value
        self._pattern = _echo_pattern(value)

    def header(self) -> str:
        return f"Bearer {self._value}"

    def fingerprint(self) -> str:
        """12 hex digits that tell keys apart without revealing them: the ledger records which
        account opened a session, since Kling's follow-up calls must use the same one.

        48 bits of a salted sha256 cannot be turned back into a high-entropy key, and are
        plenty to tell a handful of a team's keys apart.
        """
        digest = hashlib.sha256((_FINGERPRINT_PREFIX + self._value).encode("ascii"))
        return digest.hexdigest()[:12]

    def redact(self, text: str) -> str:
        """Text with the key replaced by ***, for anything a server might have echoed back.

        The key is found verbatim and in the forms a server produces when it echoes input: JSON
        string escapes (\\u00xx, \\/), URL encoding (%xx, twice too), HTML character references,
        each character independently (encoders escape some characters and not others), and
        base64 at any alignment (a gateway echoing `Authorization` in a token or a log blob).
        """
        return self._pattern.sub("***", text)

    def scrub(self, value: Any) -> Any:
        """A decoded JSON value with redact() applied to every string in it, keys included."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__


def load_api_key(key_file: str | None = None) -> ApiKey:
    """The key from --api-key-file (which must not be world-readable) or $COMETAPI_KEY."""
    if key_file:
        try:
            info = os.stat(key_file)
            if info.st_mode & stat.S_IROTH:
                raise UsageError(
                    f"{key_file} is readable by everyone: run chmod 600 {key_file} first"
                )
            with open(key_file, encoding="utf-8") as f:
                value = f.read().strip()
        except FileNotFoundError:
            raise UsageError(f"API key file not found: {key_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the API key file {key_file}: {exc}") from None
        if not value:
            raise UsageError(f"the API key file {key_file} is empty")
        return ApiKey(value, origin=f"the API key in {key_file}")
    value = os.environ.get("COMETAPI_KEY", "").strip()
    if not value:
        raise UsageError("no API key: set COMETAPI_KEY or pass --api-key-file FILE")
    return ApiKey(value, origin="the API key in $COMETAPI_KEY")


_MIN_BASE64_CORE = 12  # a shorter core could match ordinary text; keys are far longer


def _hex(number: int) -> str:
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{number:02x}")


def _char_pattern(char: str) -> str:
    code = ord(char)
    forms = [
        re.escape(char),
        r"\\u00" + _hex(code),  # JSON
        "%(?:25)?" + _hex(code),  # URL, once or twice
        f"&#0*{code};",  # HTML, decimal
        "&#[xX]0*" + _hex(code) + ";",  # HTML, hex
    ]
    escaped = {"/": r"\\/", '"': r'\\"|&quot;', "\\": r"\\\\", "&": "&amp;", "<": "&lt;"}
    if char in escaped:
        forms.append(escaped[char])
    if char == ">":
        forms.append("&gt;")
    if char == "'":
        forms.append("&apos;")
    return "(?:" + "|".join(forms) + ")"


def _base64_cores(value: str) -> list[str]:
    # The key's base64 depends on where it starts in the encoded bytes: at each of the three
    # alignments, keep only the characters made of the key's bits alone.
    raw = value.encode()
    cores: set[str] = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw).decode()
            start = -(-8 * shift // 6)
            end = 8 * (shift + len(raw)) // 6
            core = encoded[start:end]
            if len(core) >= _MIN_BASE64_CORE:
                cores.add(core)
    return sorted(cores, key=len, reverse=True)


def _echo_pattern(value: str) -> re.Pattern[str]:
    texts = [value, *_base64_cores(value)]
    return re.compile("|".join("".join(_char_pattern(c) for c in text) for text in texts))


def _key_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    for position, char in enumerate(value, 1):
        if char in "\r\n":
            return f"has a line break at character {position}"
        if char.isspace():
            return f"has a space or tab at character {position}"
        if not char.isascii():
            return f"has a non-ASCII character at character {position}"
        if not char.isprintable():
            return f"has a control character at character {position}"
    return None


def resolve_api_base(value: str | None = None) -> str:
    """--api-base, else $PREFLIGHT_API_BASE, else CometAPI; https unless the host is loopback."""
    base = (value or os.environ.get("PREFLIGHT_API_BASE") or DEFAULT_API_BASE).rstrip("/")
    try:
        parts = urlsplit(base)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise UsageError("the API base is not a valid URL") from None
    if "@" in parts.netloc:
        # requests would send user:password as Basic auth in place of our Bearer key, and the
        # base is traced and stored: refuse it, and never repeat what was before the "@".
        shown = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
        raise UsageError(
            f"the API base must not hold user:password@ ({shown}): the key goes in "
            "COMETAPI_KEY or --api-key-file"
        )
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"the API base must be an http(s) URL, not {base!r}")
    if parts.scheme == "http" and not _is_loopback(host):
        raise UsageError(f"the API base must use https (plain http only for loopback): {base}")
    return base


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
