"""`init`: open a billed editing session for one video, only after its pre-flight passed.

verdict -> request body (schemas.py) -> client (client.py; answers.py classifies what came back,
credentials.py holds the key) -> ledger. init_selection.py runs that path; result.py holds what it
returns. The names load on first use, so importing the client does not load the check pipeline.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> module that defines it
_EXPORTS = {
    "CrossCheck": "result",
    "InitResult": "result",
    "ServerFacts": "result",
    "cross_check": "result",
    "init_session": "init_selection",
    "source_key": "init_selection",
}
__all__ = ["CrossCheck", "InitResult", "ServerFacts", "cross_check", "init_session", "source_key"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight.session' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


if TYPE_CHECKING:
    from .init_selection import init_session, source_key
    from .result import CrossCheck, InitResult, ServerFacts, cross_check
