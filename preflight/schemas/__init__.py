"""The JSON files shipped with preflight: the request, response, fix and policy schemas, and the
policy profiles. `load_schema(name)` reads one; every other module asks here.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any


@lru_cache
def load_schema(name: str) -> dict[str, Any]:
    """The shipped JSON file `name` (parsed once; do not mutate)."""
    try:
        # The files sit beside this module in every normal install; importlib.resources (which
        # loads tempfile, shutil and zipfile: ~10 ms) only for a package imported from a zip.
        with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        from importlib import resources

        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    schema = json.loads(text)
    if not isinstance(schema, dict):
        raise TypeError(f"schema {name} is not a JSON object")
    return schema
