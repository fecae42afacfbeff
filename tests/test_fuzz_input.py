"""Property tests (hypothesis) over the hostile inputs around `check` (issue 21): policy documents
over the schema's shape with non-finite and huge numbers, list files, and names with control
bytes, NULs and undecodable bytes, through the library and every report format.

Bounded and derandomized (the same examples every run), so CI time stays fixed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import preflight
from preflight import PolicyError, UsageError, judge
from preflight.errors import ERROR_KINDS
from preflight.fixing.report import write_text
from preflight.policy.load import load_policy, load_policy_data
from preflight.report import WRITERS
from preflight.report.github import GithubReporter
from preflight.report.printable import printable
from preflight.report.text import TextReporter
from preflight.sources import is_url, read_list

from .conftest import FIXTURES

_BOUND = settings(
    deadline=None,  # each example is a few ms; a hang would still fail the suite's own timeout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    max_examples=300,
    derandomize=True,
)
FACTS = preflight.probe(str(FIXTURES / "media" / "fps_29.97.mp4")).facts
CONTROL = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

# -- policy documents ------------------------------------------------------------------------

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 0, 0.5, 24, 720, 2160, 86400, 65535]),
)
_range = st.fixed_dictionaries({"min": _numbers, "max": _numbers})
_policies = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=20),
        "extends": st.sampled_from(["cometapi", "kling"]),
        "containers": st.lists(
            st.sampled_from(["mp4", "mov"]), min_size=1, max_size=2, unique=True
        ),
        "duration_s": st.lists(_range, min_size=1, max_size=3),
        "width_px": _range,
        "height_px": _range,
        "fps": st.fixed_dictionaries(
            {},
            optional={"allowed": st.lists(_numbers, min_size=1, max_size=3), "tolerance": _numbers},
        ),
        "warnings": st.fixed_dictionaries(
            {},
            optional={
                "fps_average_tolerance": _numbers,
                "container_duration_tolerance_s": _numbers,
            },
        ),
    },
)


# The issue's own findings, always tried first.
_FOUND = [
    {"extends": "cometapi", "fps": {"tolerance": math.inf}},
    {"extends": "cometapi", "duration_s": [{"min": math.nan, "max": 5}]},
    {"extends": "cometapi", "fps": {"allowed": [math.nan, 30]}},
]


def _numbers_of(policy: preflight.Policy) -> list[float]:
    return [
        *(x for window in policy.duration_windows for x in window),
        *policy.width_px,
        *policy.height_px,
        *policy.fps_allowed,
        policy.fps_tolerance,
        policy.fps_average_tolerance,
        policy.container_duration_tolerance_s,
    ]


def _holds(load: Any) -> None:
    """The property: a PolicyError of one line, or a policy of finite, bounded numbers that
    judges real facts without raising."""
    try:
        policy = load()
    except PolicyError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
        return
    assert all(math.isfinite(x) and abs(x) <= 86400 for x in _numbers_of(policy)), policy
    judge(FACTS, policy)


@_BOUND
@given(document=_policies)
@example(document=_FOUND[0])
@example(document=_FOUND[1])
@example(document=_FOUND[2])
def test_any_policy_file_loads_finite_or_is_one_policy_error(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document))  # NaN and Infinity as Python writes them
    _holds(lambda: load_policy(path))


@_BOUND
@given(document=_policies)
@example(document=_FOUND[0])
@example(document=_FOUND[1])
@example(document=_FOUND[2])
def test_any_pyproject_table_loads_finite_or_is_one_policy_error(document: dict[str, Any]) -> None:
    _holds(lambda: load_policy_data(document, "pyproject.toml [tool.preflight]"))


# -- list files ------------------------------------------------------------------------------

_lines = st.lists(
    st.one_of(
        st.binary(max_size=24),
        st.sampled_from([b"# note", b"  a.mp4  ", b"\r", b"", b"\x00", b"\xff\xfe.mov", b"x" * 40]),
    ),
    max_size=12,
)


@_BOUND
@given(lines=_lines, chunk=st.integers(min_value=1, max_value=17))
def test_any_list_file_reads_as_its_lines_or_is_refused(
    tmp_path: Path, lines: list[bytes], chunk: int
) -> None:
    # Small caps and chunks, so that a few bytes reach every cap and every chunk boundary.
    content = b"\n".join(lines)
    path = tmp_path / "list.txt"
    path.write_bytes(content)
    kept = [
        name
        for name in (
            line.rstrip(b"\r").decode("utf-8", "surrogateescape").strip()
            for line in content.split(b"\n")
        )
        if name and not name.startswith("#")
    ]
    over = (
        len(content) > 200 or any(len(line) > 32 for line in content.split(b"\n")) or len(kept) > 6
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("preflight.sources.MAX_LINE_BYTES", 32)
        patch.setattr("preflight.sources.MAX_LIST_BYTES", 200)
        patch.setattr("preflight.sources.MAX_LIST_SOURCES", 6)
        patch.setattr("preflight.sources._CHUNK", chunk)
        try:
            got = read_list(str(path))
        except UsageError as exc:
            assert over, (content, str(exc))
            assert str(exc).startswith(f"--from {path} ") and "\n" not in str(exc)
            return
    assert not over and got == kept


# -- names -----------------------------------------------------------------------------------

_names = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\n", "\r", "\x1b", "\x07", "\x85", "\u2028", "\u202e", "\udcff"]),
    ),
    min_size=1,
    max_size=24,
).filter(lambda name: not is_url(name))


def _one_line_each(text: str, lines: int) -> list[str]:
    """`text` is `lines` lines, strictly UTF-8, with no control character but their ends."""
    text.encode("utf-8")  # no lone surrogate: a strict stream takes it
    got = text.split("\n")
    assert got[-1] == "" and len(got) == lines + 1, text
    assert not any(c in CONTROL for line in got for c in line), text
    return got[:-1]


@_BOUND
@given(name=_names)
def test_any_name_is_an_error_result_shown_inert_in_every_format(tmp_path: Path, name: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # an empty folder: no name can be a real video here
        result = preflight.check_one(name)  # never raises
        fix_result = preflight.fix(name, str(tmp_path / "out.mp4"), dry_run=True)
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind in ERROR_KINDS

    text = io.StringIO()
    TextReporter(text).result(result)
    first, message = _one_line_each(text.getvalue(), 2)
    assert first.startswith("ERROR ") and message.startswith("        ")

    github = io.StringIO()
    GithubReporter(github).result(result)
    (line,) = _one_line_each(github.getvalue(), 1)
    assert line.startswith("::error file=") and line.count("::") == 2, line

    fixed = io.StringIO()
    write_text(fix_result, fixed)
    (line,) = _one_line_each(fixed.getvalue(), 1)
    assert line.startswith("ERROR "), line

    policy = load_policy()
    WRITERS["junit"]([result], tmp_path / "r.xml", policy=policy)
    case = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase")
    assert case is not None and case.get("name")
    WRITERS["csv"]([result], tmp_path / "r.csv", policy=policy)
    with open(tmp_path / "r.csv", encoding="utf-8", newline="") as f:
        (row,) = list(csv.DictReader(f))
    shown = printable(name)  # exact, but for a formula's defusing quote
    assert row["source"] == ("'" + shown if shown.startswith(tuple("=+-@\t\r")) else shown)
