"""The conventions users expect of a CI gate: GitHub annotations, a policy found without a flag,
shell completion and a pre-commit hook, each driven through the real console script.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

from preflight.cli.parser import FORMATS
from preflight.report import REPORTERS
from preflight.report.github import GithubReporter, escape_data, escape_property
from preflight.verdict import Failure, Result, Violation

from .conftest import FIXTURES, preflight_script

MEDIA = FIXTURES / "media"


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PREFLIGHT_POLICY")}
    return subprocess.run(
        [preflight_script(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )


# --format github


def test_format_names_are_the_reporters() -> None:
    assert set(FORMATS) == set(REPORTERS)


def test_github_escapes_what_workflow_commands_require() -> None:
    assert escape_data("100% a\r\nb: c, d") == "100%25 a%0D%0Ab: c, d"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_github_reporter_annotates_each_problem_on_its_file() -> None:
    out = io.StringIO()
    reporter = GithubReporter(out)
    warn = Violation("fps.average", "average 29.9 fps\nvs 30", 29.9, 30)
    reporter.result(
        Result(
            "clips/a,b:c.mp4",
            "reject",
            violations=[Violation("duration.out_of_range", "lasts 1.9 s; 100%", 1.9, [2, 10])],
            warnings=[warn],
        )
    )
    reporter.result(Result("ok.mp4", "pass"))
    reporter.result(Result("bad.mp4", "error", error=Failure("not_media", "not a video file")))
    reporter.result(
        Result(
            "https://cdn.example/v.mp4",
            "reject",
            violations=[Violation("url.status", "HTTP 404", 404, 200)],
        )
    )
    assert out.getvalue().splitlines() == [
        "::error file=clips/a%2Cb%3Ac.mp4::duration.out_of_range: lasts 1.9 s; 100%25",
        "::warning file=clips/a%2Cb%3Ac.mp4::fps.average: average 29.9 fps%0Avs 30",
        "::error file=bad.mp4::not_media: not a video file",
        "::error::https://cdn.example/v.mp4: url.status: HTTP 404",
    ]


def test_check_format_github_through_the_script() -> None:
    sources = [MEDIA / "fps_30.mp4", MEDIA / "fps_25.mp4", MEDIA / "err_text.mp4"]
    done = run("check", "--format", "github", "--no-cache", *map(str, sources))
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"::error file={MEDIA / 'fps_25.mp4'}::fps.not_allowed: ")
    assert lines[1].startswith(f"::error file={MEDIA / 'err_text.mp4'}::not_media: ")
    assert lines[2] == "preflight: 3 checked: 1 pass, 1 reject, 1 error (policy cometapi)"
    assert len(lines) == 3


def test_format_json_is_json_and_conflicts_with_the_old_flags() -> None:
    source = str(MEDIA / "fps_30.mp4")
    same = [run("check", flag, "--no-cache", source) for flag in ("--json", "--format=json")]
    docs = [json.loads(d.stdout) for d in same]
    assert docs[0]["summary"] == docs[1]["summary"]
    jsonl = run("check", "--format", "jsonl", "--no-cache", source)
    assert json.loads(jsonl.stdout)["verdict"] == "pass"
    clash = run("check", "--json", "--format", "github", source)
    assert clash.returncode == 2
    assert "not allowed with" in clash.stderr
