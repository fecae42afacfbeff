"""The public names of `import preflight`: every one resolves, and to the function, never to a
submodule of the same name.
"""

from __future__ import annotations

import os
import subprocess
import sys


def test_every_public_name_resolves() -> None:
    import preflight

    for name in preflight.__all__:
        assert getattr(preflight, name) is not None, name


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    # Importing a submodule binds it on its package: no public name may share a submodule's name,
    # or `preflight.probe` would turn into a module once something imported it.
    code = (
        "import importlib, pkgutil, types, preflight\n"
        "for info in pkgutil.walk_packages(preflight.__path__, 'preflight.'):\n"
        "    if not info.name.endswith('.child'):\n"
        "        importlib.import_module(info.name)\n"
        "shadowed = [n for n in preflight.__all__\n"
        "            if isinstance(getattr(preflight, n), types.ModuleType)]\n"
        "assert not shadowed, shadowed\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_cached_check_does_not_import_requests_or_jsonschema() -> None:
    code = (
        "import sys, preflight.cli, preflight.pipeline, preflight.policy\n"
        "preflight.policy.load_policy()\n"
        "heavy = [m for m in ('requests', 'jsonschema', 'pymediainfo', 'distributed', 'dask')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_suite_points_the_api_base_at_a_closed_loopback_port() -> None:
    # A test that forgets its own stand-in API must fail closed, never reach the real one.
    from preflight.session.credentials import resolve_api_base

    from .conftest import CLOSED_API_BASE

    assert os.environ["PREFLIGHT_API_BASE"] == CLOSED_API_BASE
    assert resolve_api_base() == CLOSED_API_BASE
