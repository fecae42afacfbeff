"""The CometAPI credentials and address: the ApiKey (hidden from repr and str), how it is loaded,
and the API base URL, which must be https unless it points at loopback.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from urllib.parse import urlsplit

from .errors import UsageError

DEFAULT_API_BASE = "https://api.cometapi.com"


class ApiKey:
    """The CometAPI key. Its text is reachable only through header(); repr and str hide it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def header(self) -> str:
        return f"Bearer {self._value}"

    def redact(self, text: str) -> str:
        """Text with the key replaced, for anything a server might have echoed back."""
        return text.replace(self._value, "***") if self._value else text

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
        return ApiKey(value)
    value = os.environ.get("COMETAPI_KEY", "").strip()
    if not value:
        raise UsageError("no API key: set COMETAPI_KEY or pass --api-key-file FILE")
    return ApiKey(value)


def resolve_api_base(value: str | None = None) -> str:
    """--api-base, else $PREFLIGHT_API_BASE, else CometAPI; https unless the host is loopback."""
    base = (value or os.environ.get("PREFLIGHT_API_BASE") or DEFAULT_API_BASE).rstrip("/")
    parts = urlsplit(base)
    host = parts.hostname or ""
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
