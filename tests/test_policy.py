"""The policy on its own: boundaries from both sides (property-based), loading and merging.

judge() is pure, so these build Facts directly; the fixtures test the same limits on real files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight import Facts, PolicyError, UsageError, judge, load_policy
from preflight.policy import UrlFacts

POLICY = load_policy()
KLING = load_policy(profile="kling")
GOOD = Facts(
    container="mp4",
    brand="isom",
    video_codec="h264",
    width=1280,
    height=720,
    fps=30.0,
    fps_nominal=30.0,
    fps_average=30.0,
    fps_mode="CFR",
    duration=5.0,
    container_duration=5.0,
    frame_count=150,
    video_tracks=1,
    faststart=True,
    extension="mp4",
)


def rules(facts: Facts, policy=POLICY) -> set[str]:  # type: ignore[no-untyped-def]
    return {v.rule for v in judge(facts, policy).violations}


def test_a_good_file_passes_clean() -> None:
    verdict = judge(GOOD, POLICY)
    assert verdict.verdict == "pass" and verdict.violations == [] and verdict.warnings == []


@given(st.floats(min_value=0, max_value=30, allow_nan=False))
def test_duration_windows_are_inclusive(duration: float) -> None:
    facts = replace(GOOD, duration=duration, container_duration=duration)
    inside = 2.0 <= duration <= 5.5 or 7.0 <= duration <= 10.5
    assert ("duration.out_of_range" not in rules(facts)) == inside


@pytest.mark.parametrize(
    ("duration", "ok"),
    [
        (1.9, False),
        (2.0, True),
        (5.5, True),
        (5.6, False),
        (6.0, False),
        (7.0, True),
        (10.5, True),
        (10.6, False),
    ],
)
def test_duration_edges(duration: float, ok: bool) -> None:
    facts = replace(GOOD, duration=duration, container_duration=duration)
    assert ("duration.out_of_range" not in rules(facts)) is ok


@pytest.mark.parametrize(
    ("duration", "ok"), [(5.0, True), (5.1, False), (10.0, True), (10.1, False)]
)
def test_kling_profile_edges(duration: float, ok: bool) -> None:
    facts = replace(GOOD, duration=duration, container_duration=duration)
    assert ("duration.out_of_range" not in rules(facts, KLING)) is ok


@given(st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=5000))
def test_both_sides_within_720_2160(width: int, height: int) -> None:
    found = rules(replace(GOOD, width=width, height=height))
    assert ("resolution.width" in found) == (not 720 <= width <= 2160)
    assert ("resolution.height" in found) == (not 720 <= height <= 2160)


@given(st.floats(min_value=1, max_value=240, allow_nan=False))
def test_fps_within_a_hundredth_of_an_allowed_rate(fps: float) -> None:
    found = rules(replace(GOOD, fps=fps, fps_nominal=fps, fps_average=fps))
    near = any(abs(fps - rate) <= 0.01 for rate in (24, 30, 60))
    assert ("fps.not_allowed" not in found) == near


@pytest.mark.parametrize(
    ("fps", "exact"),
    [(29.97003, "30000/1001"), (59.94006, "60000/1001"), (23.976024, "24000/1001")],
)
def test_ntsc_rates_are_named(fps: float, exact: str) -> None:
    verdict = judge(replace(GOOD, fps=fps, fps_nominal=fps, fps_average=fps), POLICY)
    (violation,) = verdict.violations
    assert violation.rule == "fps.not_allowed" and exact in violation.message
    assert "fps=" in violation.hint


def test_container_by_content_and_extension_warning() -> None:
    assert rules(replace(GOOD, container="webm")) == {"container.unsupported"}
    mov_named_mp4 = judge(replace(GOOD, container="mov", brand="qt"), POLICY)
    assert mov_named_mp4.verdict == "pass"
    assert [w.rule for w in mov_named_mp4.warnings] == ["container.extension_mismatch"]


def test_warnings_do_not_reject() -> None:
    facts = replace(
        GOOD,
        faststart=False,
        rotation=90,
        pixel_aspect="4:3",
        fps_mode="VFR",
        fps_average=29.9,
        container_duration=6.0,
        video_tracks=2,
        brand="3gp5",
    )
    verdict = judge(facts, POLICY)
    assert verdict.verdict == "pass"
    assert {w.rule for w in verdict.warnings} == {
        "container.moov_at_end",
        "stream.rotation",
        "stream.non_square_pixels",
        "fps.variable",
        "fps.average_differs",
        "duration.container_differs",
        "stream.extra_video_tracks",
        "container.brand_family",
    }


@given(st.floats(min_value=1, max_value=240, allow_nan=False))
def test_every_fps_fix_names_an_allowed_rate(fps: float) -> None:
    facts = replace(GOOD, fps=fps, fps_nominal=fps, fps_average=fps + 1, fps_mode="VFR")
    verdict = judge(facts, POLICY)
    fixes = [p.hint for p in verdict.violations + verdict.warnings if p.rule.startswith("fps.")]
    assert fixes and all(any(f"fps={r}" in fix for r in (24, 30, 60)) for fix in fixes)


def test_no_video_track_is_a_stream_reject() -> None:
    facts = Facts(container="mp4", video_tracks=0, has_audio=True, extension="m4a")
    assert rules(facts) == {"stream.no_video"}


def test_disabled_warnings_are_not_reported(tmp_path: Path) -> None:
    house = tmp_path / "quiet.json"
    house.write_text(
        json.dumps({"extends": "cometapi", "warnings": {"disabled": ["container.moov_at_end"]}})
    )
    policy = load_policy(house)
    assert policy.fps_average_tolerance == 0.01  # merged key by key from the profile
    assert judge(replace(GOOD, faststart=False), policy).warnings == []


def test_the_judge_applies_disabled_warnings_to_the_url_rules(tmp_path: Path) -> None:
    house = tmp_path / "quiet.json"
    quiet = {"extends": "cometapi", "warnings": {"disabled": ["url.insecure"]}}
    house.write_text(json.dumps(quiet))
    url = UrlFacts("http://example.com/clip.mp4")
    assert [w.rule for w in judge(None, load_policy(), url).warnings] == ["url.insecure"]
    assert judge(None, load_policy(house), url).warnings == []
    assert judge(GOOD, load_policy(house), url).verdict == "pass"


def test_url_rules_are_judged_from_data() -> None:
    expired = UrlFacts(
        "https://example.com/a.mp4?X-Amz-Date=20250101T000000Z&X-Amz-Expires=60",
        private_address="10.0.0.1",
        checked_at=datetime(2025, 1, 1, 1, tzinfo=timezone.utc),
    )
    verdict = judge(None, load_policy(), expired)
    assert verdict.verdict == "reject"
    assert [v.rule for v in verdict.violations] == ["url.public", "url.expired"]
    lab = replace(expired, allow_private=True, checked_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert judge(None, load_policy(), lab).verdict == "pass"


def test_the_judge_needs_something_to_judge() -> None:
    with pytest.raises(UsageError):
        judge(None, load_policy())


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        "{",
        '{"containers": []}',
        '{"duration_s": [{"min": 3}]}',
        '{"extends": "nope"}',
        '{"width_px": {"min": 2000, "max": 1000}, "extends": "cometapi"}',
        '{"name": "x"}',
    ],
)
def test_bad_policies_are_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(body)
    with pytest.raises(PolicyError):
        load_policy(path)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"extends": "cometapi", "fps": {"allowed": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        '{"extends": "cometapi", "name": "x"' + " " * (1024 * 1024) + "}",
    ],
    ids=["nested-100000-deep", "nested-in-a-merged-object", "over-1-MiB"],
)
def test_hostile_policy_files_are_policy_errors(tmp_path: Path, body: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(body)
    with pytest.raises(PolicyError, match=r"nested too deeply|over 1 MiB"):
        load_policy(path)


@pytest.mark.parametrize("name", ["cometapi", "kling"])
def test_shipped_profiles_match_the_policy_schema(name: str) -> None:
    from jsonschema import Draft202012Validator

    from preflight.schemas import load_schema

    validator = Draft202012Validator(load_schema("policy.schema.json"))
    assert list(validator.iter_errors(load_schema(f"policy.{name}.json"))) == []


def test_profiles_match_the_documented_limits() -> None:
    assert POLICY.duration_windows == ((2.0, 5.5), (7.0, 10.5))
    assert KLING.duration_windows == ((2.0, 5.0), (7.0, 10.0))
    assert POLICY.width_px == POLICY.height_px == (720, 2160)
    assert POLICY.fps_allowed == (24.0, 30.0, 60.0) and POLICY.containers == ("mp4", "mov")


# Python's JSON reader takes NaN, Infinity and 1e400 (inf); TOML has nan and inf. Each would
# have loosened or broken judging (a NaN window: every file `internal`; an infinite tolerance:
# every rate passes). Each is refused, naming the field.
NON_FINITE = [
    ('"fps": {"tolerance": Infinity}', "$.fps.tolerance", "Infinity is not a finite number"),
    ('"fps": {"tolerance": 1e400}', "$.fps.tolerance", "Infinity is not a finite number"),
    ('"duration_s": [{"min": NaN, "max": 5}]', "$.duration_s[0].min", "NaN is not a finite"),
    ('"fps": {"allowed": [24, -Infinity]}', "$.fps.allowed[1]", "-Infinity is not a finite"),
    ('"warnings": {"fps_average_tolerance": NaN}', "$.warnings.fps_average_tolerance", "NaN"),
    ('"width_px": {"min": 720, "max": 1e400}', "$.width_px.max", "Infinity is not a finite"),
    ('"fps": {"allowed": [1e300]}', "$.fps.allowed[0]", "greater than the maximum of 1000"),
    ('"height_px": {"min": 1, "max": 100000000000000000000}', "$.height_px.max", "maximum"),
    ('"duration_s": [{"min": 2, "max": 1e308}]', "$.duration_s[0].max", "maximum of 86400"),
    ('"fps": {"tolerance": 1e200}', "$.fps.tolerance", "greater than the maximum of 1000"),
]


@pytest.mark.parametrize(("member", "field", "said"), NON_FINITE)
def test_non_finite_and_huge_numbers_are_refused_naming_the_field(
    tmp_path: Path, member: str, field: str, said: str
) -> None:
    from .conftest import run_cli

    path = tmp_path / "p.json"
    path.write_text('{"extends": "cometapi", ' + member + "}")
    with pytest.raises(PolicyError, match=f"at {re.escape(field)}: .*{re.escape(said)}"):
        load_policy(path)
    done = run_cli("check", "--policy", str(path), str(tmp_path / "x.mp4"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"at {field}: " in done.stderr, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_pyproject_table_with_nan_or_inf_is_refused(tmp_path: Path, value: str) -> None:
    from .conftest import run_cli

    (tmp_path / "pyproject.toml").write_text(
        f'[tool.preflight]\nextends = "cometapi"\n[tool.preflight.fps]\ntolerance = {value}\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFLIGHT_POLICY", "NO_COLOR")}
    done = run_cli("check", "x.mp4", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "at $.fps.tolerance: " in done.stderr, done.stderr


def test_a_pyproject_with_an_integer_past_pythons_digit_limit_is_a_policy_error(
    tmp_path: Path,
) -> None:
    # int() refuses over 4300 digits with a bare ValueError, which tomllib lets out.
    from preflight.policy import resolve_policy

    (tmp_path / "pyproject.toml").write_text(
        "[tool.preflight]\n[tool.preflight.width_px]\nmin = 1\nmax = " + "9" * 5000 + "\n"
    )
    with pytest.raises(PolicyError, match="not valid TOML"):
        resolve_policy(start=tmp_path, environ={})
