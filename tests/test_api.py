"""The public names of `import preflight`: every one resolves, and to the function, not a module
of the same name (preflight.check, preflight.probe are also submodules).
"""

from __future__ import annotations

import os
import subprocess
import sys
import types


def test_every_public_name_resolves() -> None:
    import preflight

    for name in preflight.__all__:
        assert getattr(preflight, name) is not None, name


def test_names_shadowed_by_submodules_stay_functions() -> None:
    code = (
        "import preflight, preflight.check, preflight.probe.remote, types\n"
        "preflight.check_one\n"
        "from preflight import check, probe\n"
        "assert not isinstance(check, types.ModuleType), check\n"
        "assert not isinstance(probe, types.ModuleType), probe\n"
        "assert callable(check) and callable(probe)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    import preflight

    assert not isinstance(preflight.check, types.ModuleType)


def test_a_cached_check_does_not_import_requests_or_jsonschema() -> None:
    code = (
        "import sys, preflight.cli, preflight.check, preflight.policy\n"
        "preflight.policy.load_policy()\n"
        "heavy = [m for m in ('requests', 'jsonschema', 'pymediainfo') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_suite_points_the_api_base_at_a_closed_loopback_port() -> None:
    # A test that forgets its own stand-in API must fail closed, never reach the real one.
    from preflight.credentials import resolve_api_base

    from .conftest import CLOSED_API_BASE

    assert os.environ["PREFLIGHT_API_BASE"] == CLOSED_API_BASE
    assert resolve_api_base() == CLOSED_API_BASE
