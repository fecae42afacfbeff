"""The JSON files shipped with preflight: the request, response, fix and policy schemas, and the
policy profiles. `load_schema(name)` reads one; every other module asks here.

They live in the repository's top-level schemas/ (language-neutral: any JSON Schema validator can
be pointed at them); an installed preflight has them as package data in preflight/schemas/
(pyproject.toml maps the folder there).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

_PACKAGE = os.path.dirname(__file__)


@lru_cache
def load_schema(name: str) -> dict[str, Any]:
    """The shipped JSON file `name` (parsed once; do not mutate)."""
    try:
        # The files sit beside this module in every normal install; importlib.resources (which
        # loads tempfile, shutil and zipfile: ~10 ms) only for a package imported from a zip.
        with open(os.path.join(_folder(), name), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        from importlib import resources

        text = (resources.files("preflight") / "schemas" / name).read_text(encoding="utf-8")
    schema = json.loads(text)
    if not isinstance(schema, dict):
        raise TypeError(f"schema {name} is not a JSON object")
    return schema


@lru_cache(maxsize=1)
def _folder() -> str:
    """preflight/schemas/ when installed; the checkout's schemas/ when run from the source tree
    (an editable install), which only a folder holding our pyproject.toml can be."""
    installed = os.path.join(_PACKAGE, "schemas")
    checkout = os.path.dirname(_PACKAGE)
    if not os.path.isdir(installed) and os.path.isfile(os.path.join(checkout, "pyproject.toml")):
        return os.path.join(checkout, "schemas")
    return installed
