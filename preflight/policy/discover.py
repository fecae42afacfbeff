"""Which policy applies when no flag names one: $PREFLIGHT_POLICY, else the nearest
`.preflight.json` or `[tool.preflight]` of a `pyproject.toml` from the current folder up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import PolicyError
from .load import DEFAULT_PROFILE, MAX_POLICY_BYTES, Policy, load_policy, load_policy_data

if TYPE_CHECKING:
    from pathlib import Path

ENV_VAR = "PREFLIGHT_POLICY"
POLICY_FILE = ".preflight.json"


def resolve_policy(
    path: str | Path | None = None,
    *,
    profile: str | None = None,
    start: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Policy, str]:
    """The policy a command applies, and where it came from (for `preflight policy` to say).

    A flag wins (`path`, then `profile`); then $PREFLIGHT_POLICY; then, in `start` (default: the
    current folder) and each folder above it, `.preflight.json`, else a `pyproject.toml` that has
    a `[tool.preflight]` table (one without is passed over, as ruff does); else the default profile.
    """
    if path is not None:
        return load_policy(path), f"--policy {path}"
    if profile is not None:
        return load_policy(profile=profile), f"--profile {profile}"
    env = os.environ if environ is None else environ
    named = env.get(ENV_VAR, "")
    if named:
        try:
            return load_policy(named), f"${ENV_VAR} {named}"
        except PolicyError as exc:
            raise PolicyError(f"${ENV_VAR}: {exc}") from None
    for here in _folders_up(os.getcwd() if start is None else os.fspath(start)):
        candidate = os.path.join(here, POLICY_FILE)
        if os.path.isfile(candidate):
            return load_policy(candidate), candidate
        pyproject = os.path.join(here, "pyproject.toml")
        if os.path.isfile(pyproject):
            table = _tool_preflight(pyproject)
            if table is not None:
                where = f"{pyproject} [tool.preflight]"
                return load_policy_data(table, where), where
    return load_policy(), f"profile {DEFAULT_PROFILE} (the default: no policy file found)"


def _folders_up(start: str) -> Iterator[str]:
    """`start` made absolute (as pathlib's absolute(): no '..' folded), then each parent up to
    the root; plain os.path, so finding the policy does not load pathlib."""
    parts = [
        part for part in os.path.join(os.getcwd(), start).split(os.sep) if part not in ("", ".")
    ]
    for end in range(len(parts), -1, -1):
        yield os.sep + os.sep.join(parts[:end])


def _tool_preflight(pyproject: str) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pyproject depends on tomli for Python 3.10 only
        import tomli as tomllib

    try:
        with open(pyproject, "rb") as f:
            content = f.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read {pyproject}: {exc.strerror or exc}") from None
    if len(content) > MAX_POLICY_BYTES:
        raise PolicyError(f"{pyproject} is over {MAX_POLICY_BYTES // 1024 // 1024} MiB")
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{pyproject} is not valid TOML: {exc}") from None
    except RecursionError:
        raise PolicyError(f"{pyproject} is nested too deeply") from None
    tool = data.get("tool", {})
    table = tool.get("preflight") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise PolicyError(f"{pyproject}: [tool.preflight] must be a table holding a policy")
    return table
