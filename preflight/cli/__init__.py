"""The `preflight` command: the argument parser (parser.py) and one handler per subcommand
(commands.py). `main` is the console script's entry point.
"""

from __future__ import annotations

from .commands import main

__all__ = ["main"]
