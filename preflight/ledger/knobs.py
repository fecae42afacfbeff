"""The ledger's waits, each a number of seconds an environment variable may set (lease, claim
wait, lock staleness, reconnecting, the read bound): read here, below every store.
"""

from __future__ import annotations

import os


def env_seconds(name: str, default: float) -> float:
    """A knob of the ledger: $name if it is a positive number of seconds, else `default`."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if 0 < value < 86_400 else default
