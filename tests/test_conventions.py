"""The conventions users expect of a CI gate: GitHub annotations, a policy found without a flag,
shell completion and a pre-commit hook, each driven through the real console script.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from preflight.cli.parser import FORMATS
from preflight.report import REPORTERS
from preflight.report.github import GithubReporter, escape_data, escape_property
from preflight.verdict import Failure, Result, Violation

from .conftest import FIXTURES, ROOT, run_cli

MEDIA = FIXTURES / "media"


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PREFLIGHT_POLICY")}
    return run_cli(*args, env={**base, **(env or {})}, cwd=cwd, timeout=timeout)


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


# A policy found without a flag

KLING_LIKE = {"extends": "cometapi", "name": "house-json", "fps": {"allowed": [25]}}


def _policy_of(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    done = run("policy", *args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["name"], done.stderr.strip()


def test_nearest_preflight_json_up_from_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / ".preflight.json").write_text(json.dumps(KLING_LIKE))
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    name, said = _policy_of(deep)
    assert name == "house-json"
    assert said == f"preflight: policy from {tmp_path / '.preflight.json'}"
    # check applies it too: 25 fps passes under the house file, is rejected by the default
    clip = str(MEDIA / "fps_25.mp4")
    assert run("check", "--no-cache", "--quiet", clip, cwd=deep).returncode == 0
    assert (
        run("check", "--no-cache", "--quiet", "--profile", "cometapi", clip, cwd=deep).returncode
        == 1
    )


def test_pyproject_tool_preflight_and_which_wins(tmp_path: Path) -> None:
    (tmp_path / ".preflight.json").write_text(json.dumps(KLING_LIKE))
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.preflight]\nextends = "cometapi"\nname = "house-toml"\n'
        "[tool.preflight.fps]\nallowed = [24, 25]\n"
    )
    name, said = _policy_of(project / "src")
    assert name == "house-toml"
    assert said.endswith(f"{project / 'pyproject.toml'} [tool.preflight]")
    # a pyproject.toml without the table is passed over: the .preflight.json above applies
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert _policy_of(project / "src")[0] == "house-json"
    # the environment beats a found file, and a flag beats the environment
    other = tmp_path / "env.json"
    other.write_text(json.dumps({**KLING_LIKE, "name": "from-env"}))
    env = {"PREFLIGHT_POLICY": str(other)}
    assert _policy_of(project, env=env) == (
        "from-env",
        f"preflight: policy from $PREFLIGHT_POLICY {other}",
    )
    assert _policy_of(project, "--profile", "kling", env=env)[0] == "kling"
    assert (
        _policy_of(project, "--policy", str(tmp_path / ".preflight.json"), env=env)[0]
        == "house-json"
    )


def test_no_policy_file_is_the_default_profile(tmp_path: Path) -> None:
    name, said = _policy_of(tmp_path)
    assert name == "cometapi"
    assert "the default" in said


def test_a_bad_found_policy_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {
        "pyproject.toml": "[tool.preflight\nname = 1\n",
        ".preflight.json": '{"extends": "cometapi", "fps": {"allowed": "many"}}',
    }
    for file, text in cases.items():
        folder = tmp_path / file.strip(".")
        folder.mkdir()
        (folder / file).write_text(text)
        done = run("policy", cwd=folder)
        assert done.returncode == 2, (file, done.stderr)
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1 and str(folder / file) in done.stderr
    missing = run("check", "x.mp4", env={"PREFLIGHT_POLICY": str(tmp_path / "nope.json")})
    assert missing.returncode == 2
    assert missing.stderr.startswith("preflight: $PREFLIGHT_POLICY: policy file not found")


# Shell completion: each script is loaded by its real shell (dev.sh installs zsh and fish)


def _completion(shell: str, tmp_path: Path) -> Path:
    done = run("completion", shell)
    assert done.returncode == 0, done.stderr
    path = tmp_path / f"preflight.{shell}"
    path.write_text(done.stdout)
    return path


def _shell(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def _bash_complete(script: Path, cwd: Path, *words: str) -> list[str]:
    # What pressing Tab does: bash fills COMP_WORDS/COMP_CWORD and calls the function.
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source '{script}'; COMP_WORDS=(preflight {quoted}); COMP_CWORD={len(words)}; "
        f"cd '{cwd}'; _preflight; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    return _shell("bash", "--norc", "--noprofile", "-c", program).split()


def test_bash_completion_by_calling_the_function(tmp_path: Path) -> None:
    script = _completion("bash", tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert "complete -o filenames -o bashdefault -F _preflight preflight" in script.read_text()
    assert _bash_complete(script, tmp_path, "ch") == ["check"]
    assert _bash_complete(script, tmp_path, "co") == ["completion"]
    assert _bash_complete(script, tmp_path, "check", "--for") == ["--format"]
    assert _bash_complete(script, tmp_path, "check", "--format", "g") == ["github"]
    assert _bash_complete(script, tmp_path, "check", "--json", "cl") == ["clip.mp4"]
    assert _bash_complete(script, tmp_path, "completion", "") == ["bash", "zsh", "fish"]
    assert _bash_complete(script, tmp_path, "fix", "--extend", "") == ["freeze", "loop", "slow"]
    assert set(_bash_complete(script, tmp_path, "policy", "--")) == {
        "--help",
        "--profile",
        "--policy",
    }


def test_fish_completion_by_asking_fish(tmp_path: Path) -> None:
    fish = shutil.which("fish")
    assert fish, "fish is missing: bash dev.sh test installs it"
    script = _completion("fish", tmp_path)

    def complete(line: str) -> list[str]:
        out = _shell(fish, "--no-config", "-c", f"source '{script}'; complete -C'{line}'")
        return [row.split("\t")[0] for row in out.splitlines()]

    assert complete("preflight ch") == ["check"]
    assert complete("preflight check --for") == ["--format"]
    assert complete("preflight check --format ") == ["github", "json", "jsonl", "text"]
    assert complete("preflight completion ") == ["bash", "fish", "zsh"]
    assert "--video-url" in complete("preflight init --")


def test_zsh_completion_loads_and_registers(tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    assert zsh, "zsh is missing: bash dev.sh test installs it"
    script = _completion("zsh", tmp_path)
    text = script.read_text()
    assert text.startswith("#compdef preflight\n")
    assert "'--format[what stdout shows]:format:(text json jsonl github)'" in text
    assert "'*--include[file names to take from folders]:include:_files'" in text
    assert "'completion:print a shell completion script'" in text
    _shell(zsh, "-n", str(script))  # parses
    program = (
        f"autoload -U compinit; compinit -u -d '{tmp_path}/zcompdump'; source '{script}'; "
        "print -r -- $_comps[preflight]"
    )
    assert _shell(zsh, "-f", "-c", program) == "_preflight\n"


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    done = run("completion", "tcsh")
    assert done.returncode == 2
    assert "invalid choice: 'tcsh'" in done.stderr


# The pre-commit hook, run by the real pre-commit: it installs this package into its own
# virtualenv with pip (from the configured index) and runs the hook on what a commit would pass.


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_pre_commit_hook_gates_the_videos_of_a_commit(tmp_path: Path) -> None:
    # try-repo clones a git repository: a copy of what the package needs, committed, so the
    # test does not depend on how this checkout was made (or on its uncommitted state).
    hook_repo = tmp_path / "preflight-repo"
    hook_repo.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, hook_repo / name)
    for folder in ("preflight", "schemas"):  # schemas/: the JSON files, package data when built
        shutil.copytree(
            ROOT / folder, hook_repo / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    identity = ("-c", "user.name=t", "-c", "user.email=t@example.invalid")
    _git(hook_repo, "init", "-q")
    _git(hook_repo, "add", ".")
    _git(hook_repo, *identity, "commit", "-qm", "hook")
    work = tmp_path / "videos"
    work.mkdir()
    shutil.copy(MEDIA / "fps_30.mp4", work / "ok.mp4")
    shutil.copy(MEDIA / "fps_25.mp4", work / "bad.m4v")
    (work / "notes.txt").write_text("not a video: the hook's files pattern leaves it out\n")
    _git(work, "init", "-q")
    _git(work, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env.pop("PREFLIGHT_POLICY", None)
    pre_commit = [str(Path(sys.executable).with_name("pre-commit")), "try-repo", str(hook_repo)]

    def hook(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*pre_commit, "preflight", "--files", *files],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    passed = hook("ok.mp4", "notes.txt")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
    failed = hook("ok.mp4", "bad.m4v", "notes.txt")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "REJECT  bad.m4v" in failed.stdout
    assert "fps.not_allowed" in failed.stdout
    assert "notes.txt" not in failed.stdout.split("hook id: preflight")[1]
    assert "2 checked: 1 pass, 1 reject" in failed.stdout
