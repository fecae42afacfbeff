"""Loopback stand-ins shipped for tests and demos, never loaded by `import preflight`.

`Sandbox` imitates init-selection (with scripted `Fault`s); `MediaServer` serves a folder with
real Range support (and injectable `Faults`); `demo` runs the whole tool against both. The names
load on first use, so `python -m preflight.testing.sandbox` does not import its module twice.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> module that defines it, relative to this package (ROUTE is the client's, which the
# sandbox serves)
_EXPORTS = {
    "DEMO_KEY": ".sandbox",
    "Fault": ".answers",
    "Faults": ".media_server",
    "MediaServer": ".media_server",
    "ROUTE": "..session.client",
    "Sandbox": ".sandbox",
}
__all__ = ["DEMO_KEY", "ROUTE", "Fault", "Faults", "MediaServer", "Sandbox"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight.testing' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


if TYPE_CHECKING:
    from ..session.client import ROUTE
    from .answers import Fault
    from .media_server import Faults, MediaServer
    from .sandbox import DEMO_KEY, Sandbox
