"""Which policy applies when no flag names one: $PREFLIGHT_POLICY, else the nearest
`.preflight.json` or `[tool.preflight]` of a `pyproject.toml` from the current folder up, if it
can be trusted (trust.py); else the default profile, with a line saying why.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PolicyError
from .load import DEFAULT_PROFILE, MAX_POLICY_BYTES, Policy, load_policy, load_policy_data
from .trust import config_path, distrust, trusted_by_config

if TYPE_CHECKING:
    from pathlib import Path

ENV_VAR = "PREFLIGHT_POLICY"
POLICY_FILE = ".preflight.json"


@dataclass(frozen=True)
class PolicyChoice:
    """The policy a command applies, where it came from, and what the user must be told."""

    policy: Policy
    origin: str  # for `preflight policy` to say
    discovered: str | None = None  # the file found walking up, when it is the one applied
    refused: str | None = None  # one line: the file found but not trusted, and how to trust it


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
    a `[tool.preflight]` table (one without is passed over, as ruff does), used only if trusted
    (preflight.policy.trust); else the default profile.
    """
    choice = choose_policy(path, profile=profile, start=start, environ=environ)
    return choice.policy, choice.origin


def choose_policy(
    path: str | Path | None = None,
    *,
    profile: str | None = None,
    start: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> PolicyChoice:
    """resolve_policy's answer, with what the CLI tells the user on stderr."""
    if path is not None:
        return PolicyChoice(load_policy(path), f"--policy {path}")
    if profile is not None:
        return PolicyChoice(load_policy(profile=profile), f"--profile {profile}")
    env = os.environ if environ is None else environ
    named = env.get(ENV_VAR, "")
    if named:
        try:
            return PolicyChoice(load_policy(named), f"${ENV_VAR} {named}")
        except PolicyError as exc:
            raise PolicyError(f"${ENV_VAR}: {exc}") from None
    walked: list[str] = []
    for here in _folders_up(os.getcwd() if start is None else os.fspath(start)):
        walked.append(here)
        candidate = os.path.join(here, POLICY_FILE)
        pyproject = os.path.join(here, "pyproject.toml")
        table = None
        if os.path.isfile(candidate):
            found = candidate
        elif os.path.isfile(pyproject) and (table := _table(pyproject, walked)) is not None:
            found = pyproject
        else:
            continue
        refused = _refusal(found, walked, env)
        if refused is not None:
            origin = f"profile {DEFAULT_PROFILE} (the default: {found} is not trusted)"
            return PolicyChoice(load_policy(), origin, refused=refused)
        if found == candidate:
            return PolicyChoice(load_policy(candidate), candidate, discovered=candidate)
        where = f"{pyproject} [tool.preflight]"
        return PolicyChoice(load_policy_data(table or {}, where), where, discovered=where)
    return PolicyChoice(load_policy(), _DEFAULT_ORIGIN)


_DEFAULT_ORIGIN = f"profile {DEFAULT_PROFILE} (the default: no policy file found)"


def _table(pyproject: str, walked: list[str]) -> dict[str, Any] | None:
    """The [tool.preflight] table of a pyproject.toml, None without one. One we would not trust
    is read only to know that: if it cannot be read, it counts as found (and is then refused)
    rather than failing the command."""
    if distrust(pyproject, walked) is None:
        return _tool_preflight(pyproject)
    try:
        return _tool_preflight(pyproject)
    except PolicyError:
        return {}


def _refusal(found: str, walked: list[str], env: Mapping[str, str]) -> str | None:
    reason = distrust(found, walked)
    if reason is None:
        return None
    trusted, note = trusted_by_config(found, env)
    if trusted:
        return None
    return (
        f"not using the policy {found}: {reason}{note}; to use it, give --policy {found}, "
        f'set {ENV_VAR}={found}, or add it to "trusted" in {config_path(env)} '
        f"(applying profile {DEFAULT_PROFILE} instead)"
    )


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
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError, an int over 4300 digits
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
