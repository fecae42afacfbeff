"""The JSON Schemas and shipped policies live at the top of the repository (schemas/, for any
validator) and an installed preflight still finds every one: `pip install .` from a clean clone,
and a wheel built from it, each into a fresh venv without preflight's dependencies, where only
the standard library loads them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import ROOT

SCHEMAS = sorted(p.name for p in (ROOT / "schemas").glob("*.json"))

# Run in the fresh venv, isolated (-I: no PYTHONPATH, no user site, not the current folder): the
# installed preflight's load_schema reads each file, and the bytes are those of schemas/.
_LOAD = """
import json, sys
from preflight import schemas
names = json.loads(sys.argv[1])
loaded = {name: schemas.load_schema(name) for name in names}
print(json.dumps({"module": schemas.__file__, "loaded": loaded}))
"""


def _clean_clone(into: Path) -> Path:
    """The files git tracks, as a fresh clone has them (no build/, no egg-info, no .venv)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        name = os.fsdecode(raw)
        if (ROOT / name).is_file():  # a file deleted in the work tree but still in the index
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


def _pip(*args: str | Path, python: Path | None = None) -> None:
    into = ["--python", str(python)] if python is not None else []  # before the subcommand
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *into, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=False)  # pip in it is not needed: the outer pip installs
    return path / "bin" / "python"


def _loads_every_schema(python: Path, cwd: Path) -> None:
    assert len(SCHEMAS) >= 6  # request, response, fix and policy schemas, two profiles
    done = subprocess.run(
        [str(python), "-I", "-c", _LOAD, json.dumps(SCHEMAS)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert Path(report["module"]).is_relative_to(python.parent.parent)  # the venv's, not ours
    for name in SCHEMAS:
        assert report["loaded"][name] == json.loads((ROOT / "schemas" / name).read_text())


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clean_clone(tmp_path_factory.mktemp("clone"))


def test_the_schemas_live_at_the_top_and_not_in_the_package() -> None:
    assert {"policy.schema.json", "init-selection.request.schema.json"} <= set(SCHEMAS)
    assert not list((ROOT / "preflight").rglob("*.json"))


def test_a_wheel_built_from_a_clean_clone_loads_every_schema(clone: Path, tmp_path: Path) -> None:
    _pip("wheel", "--no-deps", "--wheel-dir", tmp_path / "dist", clone)
    (wheel,) = (tmp_path / "dist").glob("preflight-*.whl")
    python = _fresh_venv(tmp_path / "venv")
    _pip("install", "--no-deps", wheel, python=python)
    _loads_every_schema(python, tmp_path)


def test_pip_install_from_a_clean_clone_loads_every_schema(clone: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _pip("install", "--no-deps", clone, python=python)
    _loads_every_schema(python, tmp_path)
