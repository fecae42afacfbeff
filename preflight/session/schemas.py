"""Schema checks of init-selection bodies: the request we send and the response envelope we get.

Loads the JSON Schemas shipped in preflight.schemas and turns jsonschema errors into SchemaProblems.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..schemas import load_schema

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

REQUEST_SCHEMA = "init-selection.request.schema.json"
RESPONSE_SCHEMA = "init-selection.response.schema.json"

# The request's one-input-path rule is spread over anyOf (neither given) and dependentSchemas/not
# (video_url mixed with the id path); jsonschema's own text for those dumps the whole body.
_REQUEST_RULES = {
    "anyOf": "exactly one of video_url or video_id (+ task_id) must be given",
    "not": "video_url cannot be combined with video_id or task_id: "
    "exactly one of video_url or video_id (+ task_id) must be given",
}
_RESPONSE_RULES = {
    # data needs session_id unless data.status says the video was refused.
    "anyOf": "missing required field 'session_id'",
}

_JSON_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}
_SHOWN_VALUE_CHARS = 60


@dataclass(frozen=True)
class SchemaProblem:
    """One way a body breaks its schema."""

    path: str  # JSON path like "$.video_url" or "$"
    message: str  # one line, for a human


def validate_request(body: object) -> list[SchemaProblem]:
    """Problems of an init-selection request body, sorted by path; empty when it is valid."""
    return _problems(_validator(REQUEST_SCHEMA), body, _REQUEST_RULES)


def validate_response(body: object) -> list[SchemaProblem]:
    """Problems of an init-selection HTTP 200 envelope, sorted by path; empty when it is valid."""
    return _problems(_validator(RESPONSE_SCHEMA), body, _RESPONSE_RULES)


@lru_cache
def _validator(name: str) -> Any:
    schema = load_schema(name)
    # Imported here: jsonschema costs ~45 ms, which a cached `check` run should not pay.
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _problems(validator: Any, body: object, rules: Mapping[str, str]) -> list[SchemaProblem]:
    # A set: jsonschema reports `required` and `dependentRequired` once per missing name, but
    # _describe names them all at once, so those errors collapse into one problem.
    try:
        found = {
            SchemaProblem(path=str(error.json_path), message=_describe(error, rules))
            for error in validator.iter_errors(body)
        }
    except RecursionError:
        # jsonschema recurses (and quotes values) per level: a body nested a thousand deep is a
        # problem to report, not a crash. No real body comes near it.
        return [SchemaProblem(path="$", message="nested too deeply to check")]
    return sorted(found, key=lambda problem: (problem.path, problem.message))


def _describe(error: ValidationError, rules: Mapping[str, str]) -> str:
    keyword = str(error.validator)
    expected = error.validator_value
    instance = error.instance
    if keyword in rules:
        return rules[keyword]
    if keyword == "type":
        wanted = [expected] if isinstance(expected, str) else list(expected)
        kinds = " or ".join(_with_article(name) for name in wanted)
        return f"must be {kinds}, got {_json_type(instance)}"
    if keyword == "minLength" and expected == 1:
        return "must not be empty"
    if keyword == "pattern":
        title = error.schema.get("title")
        if isinstance(title, str):
            return f"{_shown(instance)} is not a valid {title}"
        return f"{_shown(instance)} does not match the pattern {expected}"
    if keyword == "required" and isinstance(instance, dict):
        missing = [name for name in expected if name not in instance]
        return f"missing required field {_names(missing)}"
    if keyword == "dependentRequired" and isinstance(instance, dict):
        needs = [
            f"{name!r} requires {_names([dep for dep in deps if dep not in instance])}"
            for name, deps in expected.items()
            if name in instance and any(dep not in instance for dep in deps)
        ]
        return "; ".join(needs)
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        unknown = [name for name in instance if name not in known]
        allowed = ", ".join(known)
        return f"unknown field {_names(unknown)} (allowed: {allowed})"
    # jsonschema's own text is readable for the rest; keep it to one line.
    return " ".join(str(error.message).split())


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _with_article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > _SHOWN_VALUE_CHARS:
        return text[: _SHOWN_VALUE_CHARS - 1] + "…"
    return text
