"""Whether a policy file found by walking up from the current folder may be used.

git's `safe.directory` precedent: a file someone else could have written must not quietly
change what passes. A discovered file is trusted only if it, and every folder the walk went
through to reach it, is owned by you or root and writable by no one else (group-writable is
fine when the group is your own private group, the usual umask 002 of Debian and Ubuntu).
Anything else is used only when you say so: `--policy FILE`, `$PREFLIGHT_POLICY`, or a
`trusted` list in your own config file, `$XDG_CONFIG_HOME/preflight/config.json` (default
`~/.config/preflight/config.json`): `{"trusted": ["/srv/exports", "/srv/exports/.preflight.json"]}`
names files or the folders that hold them, or `"*"` for any. It lives in your home, as git's
list does in ~/.gitconfig, because a list in a project or a shared folder could be planted
beside the policy it vouches for; the config file is read only if it passes the same check.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence

from ..errors import PolicyError

CONFIG_NAME = os.path.join("preflight", "config.json")
_MAX_CONFIG_BYTES = 1024 * 1024


def distrust(path: str, walked: Sequence[str]) -> str | None:
    """Why the discovered `path` must not be used, or None when it may: the file (and, for a
    symlink, the link and its target) and each folder of `walked` pass `_unsafe`."""
    try:
        link = os.lstat(path)
        target = os.stat(path)
    except OSError as exc:
        return f"cannot check who owns it: {exc.strerror or exc}"
    if stat.S_ISLNK(link.st_mode):
        # Anyone may make a link; what it says is the link's owner's word.
        reason = _owner_problem(link.st_uid)
        if reason:
            return f"it is a symlink {reason}"
    reason = _unsafe(target)
    if reason:
        return f"it is {reason}"
    for folder in walked:
        try:
            info = os.stat(folder)
        except OSError as exc:
            return f"cannot check who owns {folder}: {exc.strerror or exc}"
        reason = _unsafe(info)
        if reason:
            return f"the folder {folder} is {reason}"
    return None


def _unsafe(info: os.stat_result) -> str | None:
    owner = _owner_problem(info.st_uid)
    if owner:
        return owner
    if info.st_mode & stat.S_IWOTH:
        return "writable by others"
    if info.st_mode & stat.S_IWGRP and not _only_mine(info.st_gid):
        return f"writable by group {_group_name(info.st_gid)}"
    return None


def _owner_problem(uid: int) -> str | None:
    if uid in (0, os.geteuid()):
        return None
    return f"owned by {_user_name(uid)}, not by you or root"


def _only_mine(gid: int) -> bool:
    """Whether group `gid` is the user's private group: named like the user, their primary
    group, with no other member listed."""
    import grp
    import pwd

    try:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return gid == me.pw_gid and group.gr_name == me.pw_name and set(group.gr_mem) <= {me.pw_name}


def _user_name(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def config_path(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return os.path.join(base, CONFIG_NAME)


def trusted_by_config(path: str, environ: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the user's config trusts `path` (the file or its folder), and a note when the
    config exists but is not used (someone else could have written it)."""
    config = config_path(environ)
    if not os.path.exists(config):
        return False, ""
    reason = distrust(config, ())
    if reason:
        return False, f"; {config} is not used either: {reason}"
    try:
        with open(config, "rb") as f:
            content = f.read(_MAX_CONFIG_BYTES + 1)
        if len(content) > _MAX_CONFIG_BYTES:
            raise ValueError("over 1 MiB")
        data = json.loads(content.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise PolicyError(f"cannot read {config}: {exc}") from None
    entries = data.get("trusted", []) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise PolicyError(f'{config}: "trusted" must be a list of paths')
    allowed = {os.path.abspath(os.path.expanduser(e)) for e in entries if e != "*"}
    return "*" in entries or path in allowed or os.path.dirname(path) in allowed, ""
