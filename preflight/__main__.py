"""`python -m preflight`: the `preflight` command, for where the console script is not on PATH."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":  # importing this module (pkgutil.walk_packages does) runs nothing
    sys.exit(main())
