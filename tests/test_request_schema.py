"""The init-selection request and response schemas, driven by the example files beside this test.

Adding a case is adding a file under tests/example-{requests,responses}/ (and, for an invalid one,
a row in that folder's expected.json naming the JSON paths its problems must include).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from preflight.schemas import load_schema
from preflight.session.schemas import (
    REQUEST_SCHEMA,
    RESPONSE_SCHEMA,
    SchemaProblem,
    validate_request,
    validate_response,
)

HERE = Path(__file__).resolve().parent
MANIFEST = "expected.json"
VALIDATORS: dict[str, Callable[[object], list[SchemaProblem]]] = {
    "example-requests": validate_request,
    "example-responses": validate_response,
}


def _examples(kind: str) -> list[Any]:
    return [
        pytest.param(folder, path, id=f"{folder}/{kind}/{path.name}")
        for folder in VALIDATORS
        for path in sorted((HERE / folder / kind).glob("*.json"))
        if path.name != MANIFEST
    ]


def _manifest(folder: str) -> dict[str, list[str]]:
    expected: dict[str, list[str]] = json.loads(
        (HERE / folder / "invalid" / MANIFEST).read_text(encoding="utf-8")
    )
    return expected


@pytest.mark.parametrize("name", [REQUEST_SCHEMA, RESPONSE_SCHEMA])
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://preflight.local/schemas/{name}"


@pytest.mark.parametrize(("folder", "path"), _examples("valid"))
def test_valid_example_has_no_problems(folder: str, path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    assert VALIDATORS[folder](body) == []


@pytest.mark.parametrize(("folder", "path"), _examples("invalid"))
def test_invalid_example_has_expected_problems(folder: str, path: Path) -> None:
    expected_paths = _manifest(folder).get(path.name)
    assert expected_paths, f"{path.name} has no row in {folder}/invalid/{MANIFEST}"
    problems = VALIDATORS[folder](json.loads(path.read_text(encoding="utf-8")))
    found_paths = {problem.path for problem in problems}
    assert set(expected_paths) <= found_paths, problems
    assert problems == sorted(problems, key=lambda problem: (problem.path, problem.message))
    for problem in problems:
        assert problem.message
        assert "\n" not in problem.message


@pytest.mark.parametrize("folder", list(VALIDATORS))
def test_manifest_rows_name_existing_files(folder: str) -> None:
    invalid = HERE / folder / "invalid"
    stale = [name for name in _manifest(folder) if not (invalid / name).is_file()]
    assert stale == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of video_url or video_id (+ task_id) must be given"),
        ({"video_url": "https://a.example/v.mp4", "video_id": "1", "task_id": "2"}, "video_url"),
        ({"video_id": "1"}, "'video_id' requires 'task_id'"),
        ({"video_url": "https://a.example/v.mp4", "task_id": "2"}, "task_id"),
        ({"video_url": "https://a.example/v.mp4", "prompt": "x"}, "unknown field 'prompt'"),
        ({"video_url": "ftp://a.example/v.mp4"}, "not a valid http(s) URL"),
        ({"video_id": "", "task_id": "2"}, "must not be empty"),
        ([], "must be an object, got array"),
    ],
)
def test_request_messages_say_what_is_wrong(body: object, fragment: str) -> None:
    messages = [problem.message for problem in validate_request(body)]
    assert any(fragment in message for message in messages), messages


def test_success_response_without_session_id_names_it() -> None:
    problems = validate_response({"code": 0, "message": "success", "data": {}})
    assert problems == [SchemaProblem("$.data", "missing required field 'session_id'")]
