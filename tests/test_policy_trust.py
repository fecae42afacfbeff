"""A policy found on disk is trusted only if its owner is (issue 21, item 2).

Real files owned by another user (`nobody`, by chown: as root, or through `sudo -n` as dev.sh
does when CI runs as a user) in a parent folder of the one the command runs in; the real console
script in that folder. The planted policy allows 29.97 fps: used, it would pass a file the
default rejects.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.testing import ROUTE, Sandbox
from preflight.testing.media_server import MediaServer

from .conftest import FIXTURES, preflight_script, run_cli

NTSC = FIXTURES / "media" / "fps_29.97.mp4"  # rejected by the default profile for its rate only
LOOSE = {"name": "loose", "extends": "cometapi", "fps": {"allowed": [24, 29.97, 30, 60]}}
LOOSE_TOML = (
    '[tool.preflight]\nname = "loose"\nextends = "cometapi"\n'
    "[tool.preflight.fps]\nallowed = [24, 29.97, 30, 60]\n"
)
KEY = "sk-test-TRUST-5e1d"
NOBODY = pwd.getpwnam("nobody").pw_uid


def _can_chown() -> bool:
    if os.geteuid() == 0:
        return True
    sudo = shutil.which("sudo")  # dev.sh's own route to root when CI runs as a user
    return sudo is not None and subprocess.run([sudo, "-n", "true"], check=False).returncode == 0


needs_root = pytest.mark.skipif(
    not _can_chown(), reason="chown to another user needs root or sudo -n (CI has either)"
)


def _chown(path: Path, uid: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, uid, -1)
    else:
        subprocess.run(["sudo", "-n", "chown", str(uid), str(path)], check=True)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NO_COLOR", "PREFLIGHT_POLICY", "XDG_CONFIG_HOME")
    }
    # The user's own config is a test's own: never the real ~/.config of whoever runs the suite.
    return {**base, "XDG_CONFIG_HOME": str(tmp_path / "config"), **extra}


def _plant(tmp_path: Path, kind: str = ".preflight.json", owner: int = NOBODY) -> Path:
    """`shared/` holds the policy (owned by `owner`); the command runs in `shared/me/`."""
    shared = tmp_path / "shared"
    (shared / "me").mkdir(parents=True)
    policy = shared / kind
    policy.write_text(LOOSE_TOML if kind == "pyproject.toml" else json.dumps(LOOSE))
    if owner != os.geteuid():
        _chown(policy, owner)
    return policy


def _refusal(stderr: str, policy: Path) -> str:
    lines = [line for line in stderr.splitlines() if "not using the policy" in line]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith(f"preflight: warning: not using the policy {policy}: "), line
    for how in (f"--policy {policy}", f"PREFLIGHT_POLICY={policy}", '"trusted"'):
        assert how in line, line
    return line


@needs_root
@pytest.mark.parametrize("kind", [".preflight.json", "pyproject.toml"])
def test_a_policy_planted_by_another_user_is_not_used(tmp_path: Path, kind: str) -> None:
    policy = _plant(tmp_path, kind)
    here = tmp_path / "shared" / "me"
    done = run_cli("check", "--json", "--no-cache", str(NTSC), cwd=here, env=_env(tmp_path))
    assert done.returncode == 1, done.stderr  # the default profile applied: 29.97 is rejected
    out = json.loads(done.stdout)
    assert out["summary"]["policy"] == "cometapi"
    assert "owned by nobody" in _refusal(done.stderr, policy)
    # The library says the same: the default profile, and why.
    from preflight.policy import choose_policy, resolve_policy

    choice = choose_policy(start=here, environ=_env(tmp_path))
    assert choice.policy.name == "cometapi" and choice.discovered is None
    assert choice.refused is not None and str(policy) in choice.refused
    assert resolve_policy(start=here, environ=_env(tmp_path))[0].fps_allowed == (24, 30, 60)

    # The same file owned by root is trusted: applied, and named once.
    _chown(policy, 0)
    done = run_cli("check", "--json", "--no-cache", str(NTSC), cwd=here, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    named = f"{policy} [tool.preflight]" if kind == "pyproject.toml" else str(policy)
    assert done.stderr.splitlines() == [f"preflight: policy from {named}"]


@needs_root
def test_a_folder_on_the_way_owned_by_another_user_is_not_trusted(tmp_path: Path) -> None:
    policy = _plant(tmp_path, owner=0)
    _chown(tmp_path / "shared", NOBODY)  # who owns the folder can swap the file
    done = run_cli(
        "check", "--no-cache", str(NTSC), cwd=tmp_path / "shared" / "me", env=_env(tmp_path)
    )
    assert done.returncode == 1
    _chown(tmp_path / "shared", os.geteuid())  # so that pytest can remove it later
    assert f"the folder {tmp_path / 'shared'} is owned by nobody" in _refusal(done.stderr, policy)


@pytest.mark.parametrize(
    ("writable", "mode", "said"),
    [
        ("file", 0o666, "it is writable by others"),
        ("file", 0o646, "it is writable by others"),
        ("its folder", 0o777, "the folder {shared} is writable by others"),
        ("the current folder", 0o757, "the folder {me} is writable by others"),
    ],
)
def test_a_policy_or_folder_on_the_way_writable_by_others_is_not_trusted(
    tmp_path: Path, writable: str, mode: int, said: str
) -> None:
    policy = _plant(tmp_path, owner=os.geteuid())
    shared, me = tmp_path / "shared", tmp_path / "shared" / "me"
    target = {"file": policy, "its folder": shared, "the current folder": me}[writable]
    target.chmod(mode)
    done = run_cli("check", "--no-cache", str(NTSC), cwd=me, env=_env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert said.format(shared=shared, me=me) in _refusal(done.stderr, policy)
    target.chmod(0o644 if target == policy else 0o755)
    done = run_cli("check", "--no-cache", str(NTSC), cwd=me, env=_env(tmp_path))
    assert done.returncode == 0 and done.stderr == f"preflight: policy from {policy}\n"


@needs_root
def test_the_users_trusted_list_trusts_a_file_or_its_folder(tmp_path: Path) -> None:
    policy = _plant(tmp_path)
    here = tmp_path / "shared" / "me"
    config = tmp_path / "config" / "preflight" / "config.json"
    config.parent.mkdir(parents=True)
    for entry in (str(policy), str(policy.parent), "*"):
        config.write_text(json.dumps({"trusted": [entry]}))
        done = run_cli("check", "--no-cache", str(NTSC), cwd=here, env=_env(tmp_path))
        assert done.returncode == 0, (entry, done.stderr)
        assert done.stderr == f"preflight: policy from {policy}\n"
    # A config someone else could have written vouches for nothing, and the line says so.
    _chown(config, NOBODY)
    done = run_cli("check", "--no-cache", str(NTSC), cwd=here, env=_env(tmp_path))
    assert done.returncode == 1
    assert f"{config} is not used either: it is owned by nobody" in _refusal(done.stderr, policy)


@needs_root
def test_the_flag_and_the_variable_still_use_a_file_someone_else_owns(tmp_path: Path) -> None:
    policy = _plant(tmp_path)
    here = tmp_path / "shared" / "me"
    flagged = run_cli("check", "--policy", str(policy), str(NTSC), cwd=here, env=_env(tmp_path))
    assert flagged.returncode == 0 and flagged.stderr == ""
    named = run_cli("check", str(NTSC), cwd=here, env=_env(tmp_path, PREFLIGHT_POLICY=str(policy)))
    assert named.returncode == 0 and named.stderr == ""


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer(FIXTURES / "media") as server:
        yield server


@needs_root
def test_every_command_refuses_a_planted_policy_once(tmp_path: Path, media: MediaServer) -> None:
    policy = _plant(tmp_path)
    here = tmp_path / "shared" / "me"
    env = _env(tmp_path)

    shown = run_cli("policy", cwd=here, env=env)
    assert json.loads(shown.stdout)["name"] == "cometapi"
    _refusal(shown.stderr, policy)

    fixed = run_cli("fix", "--dry-run", str(NTSC), cwd=here, env=env)
    assert fixed.stdout.startswith("PLAN"), fixed.stdout  # the loose policy said "nothing to fix"
    _refusal(fixed.stderr, policy)

    with Sandbox(key=KEY) as api:
        env_api = {**env, "COMETAPI_KEY": KEY, "PREFLIGHT_API_BASE": api.base_url}
        env_api["PREFLIGHT_LEDGER"] = str(tmp_path / "ledger.sqlite3")
        sent = run_cli(
            "init",
            "--allow-private-urls",
            "--video-url",
            media.url(NTSC.name),
            cwd=here,
            env=env_api,
        )
        assert sent.returncode == 1, sent.stderr
        assert sum(1 for r in api.requests if r.path.startswith(ROUTE)) == 0
    _refusal(sent.stderr, policy)

    first, errors = _watch_once(tmp_path / "exports", here, env)
    assert first.startswith("REJECT  fps_29.97.mp4"), first
    _refusal(errors, policy)


@needs_root
def test_every_command_names_a_discovered_policy_once(tmp_path: Path, media: MediaServer) -> None:
    policy = _plant(tmp_path, owner=0)
    here = tmp_path / "shared" / "me"
    env = _env(tmp_path)
    said = f"preflight: policy from {policy}"

    checked = run_cli("check", str(NTSC), cwd=here, env=env)
    assert checked.returncode == 0 and checked.stderr.splitlines() == [said]
    shown = run_cli("policy", cwd=here, env=env)
    assert json.loads(shown.stdout)["name"] == "loose" and shown.stderr.splitlines() == [said]
    fixed = run_cli("fix", "--dry-run", str(NTSC), cwd=here, env=env)
    assert fixed.stdout.startswith("OK") and fixed.stderr.splitlines() == [said]
    with Sandbox(key=KEY) as api:
        env_api = {**env, "COMETAPI_KEY": KEY, "PREFLIGHT_API_BASE": api.base_url}
        env_api["PREFLIGHT_LEDGER"] = str(tmp_path / "ledger.sqlite3")
        sent = run_cli(
            "init",
            "--dry-run",
            "--allow-private-urls",
            "--video-url",
            media.url(NTSC.name),
            cwd=here,
            env=env_api,
        )
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.count(said) == 1, sent.stderr  # init resolves the policy twice
    first, errors = _watch_once(tmp_path / "exports", here, env)
    assert first.startswith("PASS    fps_29.97.mp4"), first
    assert errors.count(said) == 1, errors


def _watch_once(folder: Path, cwd: Path, env: dict[str, str]) -> tuple[str, str]:
    """`preflight watch` until its first verdict line, then Ctrl-C: (that line, stderr)."""
    folder.mkdir(exist_ok=True)
    shutil.copyfile(NTSC, folder / NTSC.name)
    process = subprocess.Popen(
        [preflight_script(), "watch", "--interval", "0.05", "--settle", "0.2", str(folder)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    (folder / NTSC.name).unlink(missing_ok=True)
    return first, errors


@needs_root
def test_group_writable_is_trusted_only_for_your_own_private_group(tmp_path: Path) -> None:
    # Debian's umask 002 makes a user's files writable by their private group (only them);
    # writable by a group others are in is someone else's say.
    policy = _plant(tmp_path, owner=os.geteuid())
    here = tmp_path / "shared" / "me"
    policy.chmod(0o664)
    me = pwd.getpwuid(os.geteuid()).pw_name
    if grp.getgrgid(os.getegid()).gr_name == me:  # root's group as root; Debian's private group
        done = run_cli("check", "--no-cache", str(NTSC), cwd=here, env=_env(tmp_path))
        assert done.returncode == 0, done.stderr
        assert done.stderr == f"preflight: policy from {policy}\n"
    other = grp.getgrnam("nogroup").gr_gid
    _chgrp(policy, other)
    done = run_cli("check", "--no-cache", str(NTSC), cwd=here, env=_env(tmp_path))
    assert done.returncode == 1
    assert "it is writable by group nogroup" in _refusal(done.stderr, policy)


def _chgrp(path: Path, gid: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, -1, gid)
    else:
        subprocess.run(["sudo", "-n", "chgrp", str(gid), str(path)], check=True)
