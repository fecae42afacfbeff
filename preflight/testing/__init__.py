"""Loopback stand-ins shipped for tests and demos, never loaded by `import preflight`.

`Sandbox` imitates init-selection (with scripted `Fault`s); `MediaServer` serves a folder with
real Range support (and injectable `Faults`); `demo` runs the whole tool against both. The names
load on first use, so `python -m preflight.testing.sandbox` does not import its module twice.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEMO_KEY": "sandbox",
    "Fault": "sandbox",
    "Faults": "media_server",
    "MediaServer": "media_server",
    "ROUTE": "sandbox",
    "Sandbox": "sandbox",
}
__all__ = ["DEMO_KEY", "ROUTE", "Fault", "Faults", "MediaServer", "Sandbox"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight.testing' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


if TYPE_CHECKING:
    from .media_server import Faults, MediaServer
    from .sandbox import DEMO_KEY, ROUTE, Fault, Sandbox
