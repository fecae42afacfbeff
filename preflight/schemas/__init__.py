"""The JSON files shipped with preflight: the request, response, fix and policy schemas, and the
policy profiles. `load_schema(name)` reads one; every other module asks here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache
def load_schema(name: str) -> dict[str, Any]:
    """The shipped JSON file `name` (parsed once; do not mutate)."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    schema = json.loads(text)
    if not isinstance(schema, dict):
        raise TypeError(f"schema {name} is not a JSON object")
    return schema
