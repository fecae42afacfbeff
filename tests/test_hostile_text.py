"""Hostile text in names, list files and policy fields, through the real console script and the
library (issue 21, items 3 and 5): escaped for every format, never raising, never unbounded.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import preflight

from .conftest import FIXTURES, preflight_script, run_cli

NTSC = FIXTURES / "media" / "fps_29.97.mp4"  # rejected (29.97 fps), every other fact passes
GOOD = FIXTURES / "media" / "fps_30.mp4"
INJECTED_NAME = (
    "house\n::add-mask::hunter2\n::error file=README.md::injected\r"
    "##[error]old-style <script>alert(1)</script>"
)
CONTROL = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONIOENCODING")}
    return {**base, **extra}


def _no_raw_control(text: str) -> None:
    """Every control character of `text` is a line's own end: none came from a field."""
    for line in text.split("\n"):
        assert not any(c in CONTROL for c in line), repr(line)


def test_a_policy_name_cannot_inject_workflow_commands_or_markup(tmp_path: Path) -> None:
    policy = tmp_path / "house.json"
    policy.write_text(json.dumps({"name": INJECTED_NAME, "extends": "cometapi"}))
    junit, html = tmp_path / "r.xml", tmp_path / "r.html"
    done = run_cli(
        "check", "--format", "github", "--no-cache", "--policy", str(policy),
        "--junit", str(junit), "--html", str(html), str(GOOD), str(NTSC),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout  # one annotation, one summary: nothing else
    assert lines[0].startswith(f"::error file={NTSC}::fps.not_allowed: ")
    assert lines[1] == (
        "preflight: 2 checked: 1 pass, 1 reject, 0 error (policy house\\n::add-mask::hunter2"
        "\\n::error file=README.md::injected\\r##%5Berror]old-style <script>alert(1)</script>)"
    )
    _no_raw_control(done.stdout)
    # JUnit keeps the name exactly (XML escapes it); HTML shows it as text, never as markup.
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    values = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert values["policy"] == INJECTED_NAME
    assert "<script>alert" not in html.read_text() and "&lt;script&gt;" in html.read_text()
    # The text summary (two results) shows the same name on its one line.
    text = run_cli("check", "--no-cache", "--policy", str(policy), str(GOOD), str(NTSC))
    assert text.stdout.splitlines()[-1].startswith("2 checked: 1 pass, 1 reject, 0 error")
    _no_raw_control(text.stdout)


@pytest.fixture
def odd_names(tmp_path: Path) -> dict[str, Path]:
    """Copies of the rejected fixture under names that try to forge lines and drive terminals."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = {
        "newline": "a\nPASS    fake.mp4",
        "fixed": "b\nFIXED     fake.mp4 → c.mp4",
        "cr": "c\rPASS    over.mp4",
        "escape": "d\x1b]0;pwned\x07\x1b[2J\x1b[32m.mp4",
        "c1": "e\x9b31m\x85.mp4",
        "bidi": "f\u202ekcod.mp4",
    }
    out = {}
    for key, name in names.items():
        shutil.copyfile(NTSC, folder / name)
        out[key] = folder / name
    return out


@pytest.mark.parametrize("mode", ["text", "github"])
def test_control_bytes_in_names_never_reach_the_output_raw(
    odd_names: dict[str, Path], mode: str
) -> None:
    names = [str(p) for p in odd_names.values()]
    done = run_cli("check", "--format", mode, "--no-cache", "--color", "never", *names)
    assert done.returncode == 1, done.stderr
    _no_raw_control(done.stdout)
    lines = done.stdout.splitlines()
    if mode == "text":
        verdicts = [line for line in lines if not line.startswith(" ")]
        assert [v.split()[0] for v in verdicts[:-1]] == ["REJECT"] * len(names), done.stdout
        assert "a\\nPASS    fake.mp4" in done.stdout and "\\x1b]0;pwned\\x07" in done.stdout
    else:
        # One annotation per file, each on its own line; GitHub's own %0A for a line break.
        assert [line.split("::")[1].split(" ")[0] for line in lines[:-1]] == ["error"] * len(names)
        assert "a%0APASS    fake.mp4" in done.stdout and "c%0DPASS" in done.stdout


def test_a_newline_in_a_name_cannot_print_a_fake_fixed_line(odd_names: dict[str, Path]) -> None:
    names = [str(p) for p in odd_names.values()]
    done = run_cli("fix", "--dry-run", *names)
    assert done.returncode == 0, done.stderr
    _no_raw_control(done.stdout)
    heads = [line.split()[0] for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert heads[:-1] == ["PLAN"] * len(names) and heads[-1] == str(len(names)), done.stdout


def _undecodable(tmp_path: Path) -> str:
    """A copy of the rejected fixture under a name that is not UTF-8, as Python holds it."""
    raw = os.fsencode(tmp_path) + b"/clip\xff\xfe.mp4"
    shutil.copyfile(NTSC, raw)
    return os.fsdecode(raw)


@pytest.mark.parametrize("encoding", ["ascii", "utf-8", "latin-1"])
def test_no_output_encoding_makes_check_raise(tmp_path: Path, encoding: str) -> None:
    # `✗` in every reject line cannot be written in ASCII; a strict UTF-8 stream refuses the
    # surrogate escapes of a name that is not UTF-8; latin-1 refuses `≠`, `→` and `✗`.
    name = _undecodable(tmp_path)
    env = _env(PYTHONIOENCODING=encoding)  # Python's default for a named encoding: strict
    for mode in ("text", "json", "jsonl", "github"):
        reports = [f"--{kind}={tmp_path / f'r.{kind}'}" for kind in ("junit", "csv", "html")]
        done = run_cli("check", "--format", mode, "--no-cache", *reports, name, str(NTSC), env=env)
        assert done.returncode == 1, (mode, done.stderr)
        assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
        assert "\\xff\\xfe" in done.stdout or "\\udcff\\udcfe" in done.stdout, done.stdout
        _no_raw_control(done.stdout)


@pytest.mark.parametrize("encoding", ["ascii", "utf-8"])
def test_no_output_encoding_makes_fix_raise(tmp_path: Path, encoding: str) -> None:
    # An ordinary name, whose plan line has `→`, and one that is not UTF-8. (fix itself cannot
    # yet fix the second: ffmpeg-python refuses its surrogates; that is an `error` result, which
    # must still be printed.)
    plain = tmp_path / "plain.mp4"
    shutil.copyfile(NTSC, plain)
    name = _undecodable(tmp_path)
    for args in (["--dry-run"], ["--dry-run", "--json"], ["--dry-run", "--jsonl"], []):
        done = run_cli("fix", *args, str(plain), name, env=_env(PYTHONIOENCODING=encoding))
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 3), (args, done.stderr)
        assert "clip\\xff\\xfe" in done.stdout or "clip\\udcff\\udcfe" in done.stdout
        assert "plain" in done.stdout
        _no_raw_control(done.stdout)


def test_a_nul_in_a_name_is_an_error_result_never_an_exception() -> None:
    for name in ("clip\x00.mp4", "\x00", "a/\x00/b.mov"):
        result = preflight.check_one(name)
        assert result.verdict == "error" and result.error is not None
        assert result.error.kind == "missing" and "NUL" in result.error.message
    results = preflight.check(["x\x00.mp4", str(GOOD)])
    assert [r.verdict for r in results] == ["error", "pass"]


@pytest.mark.parametrize("mode", ["text", "github", "json", "jsonl"])
def test_the_cli_never_prints_a_nul(tmp_path: Path, mode: str) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"clip\x00.mp4\n" + os.fsencode(GOOD) + b"\n")
    done = run_cli("check", "--format", mode, "--from", str(listing))
    assert done.returncode == 3, done.stderr
    assert "\x00" not in done.stdout and "\x00" not in done.stderr
    assert "clip\\x00.mp4" in done.stdout or "clip\\u0000.mp4" in done.stdout, done.stdout
    if mode == "json":
        first = json.loads(done.stdout)["results"][0]
        assert first["source"] == "clip\x00.mp4" and first["error"]["kind"] == "missing"


LIST_MEMORY = 400 << 20  # bytes of address space for the whole CLI run


def _bounded() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (LIST_MEMORY, LIST_MEMORY))


def _check_list(source: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [preflight_script(), "check", "--no-cache", "--from", source],
        input=stdin,
        capture_output=True,
        env=_env(),
        timeout=60,
        preexec_fn=_bounded,
        check=False,
    )


def test_an_endless_list_is_refused_in_bounded_memory() -> None:
    done = _check_list("/dev/zero")
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        done.stderr
        == b"preflight: --from /dev/zero has a line over 64 KiB: not a list of sources\n"
    )


def test_a_list_with_a_line_over_the_cap_is_refused(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.mp4\n" + b"x" * (64 * 1024 + 1) + b"\nb.mp4\n")
    done = _check_list(str(listing))
    assert done.returncode == 2 and b"has a line over 64 KiB" in done.stderr, done.stderr
    assert done.stdout == b""


def test_a_list_of_over_a_million_sources_is_refused() -> None:
    done = _check_list("-", stdin=b"x.mp4\n" * 1_000_001)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == b"preflight: --from - lists over 1,000,000 sources: split the list\n"


def test_a_list_keeps_names_that_are_not_utf8(tmp_path: Path) -> None:
    name = _undecodable(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"# a comment\r\n\r\n  " + os.fsencode(name) + b"  \r\n")
    done = run_cli("check", "--json", "--no-cache", "--from", str(listing))
    assert done.returncode == 1, done.stderr
    assert [r["source"] for r in json.loads(done.stdout)["results"]] == [name]


def test_a_list_from_a_closed_standard_input_is_one_line() -> None:
    done = subprocess.run(
        [preflight_script(), "check", "--from", "-"],
        capture_output=True,
        env=_env(),
        timeout=60,
        preexec_fn=lambda: os.close(0),  # started with no standard input at all
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == b"preflight: --from -: there is no standard input to read\n"


def test_watch_warnings_show_names_escaped(tmp_path: Path) -> None:
    # rejected/ is a file, so the rejected video cannot be moved: watch warns, naming it.
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "rejected").write_text("not a folder")
    shutil.copyfile(NTSC, folder / "take\x1b[2J\nPASS    x.mp4")
    process = subprocess.Popen(
        [
            preflight_script(),
            "watch",
            "--sort",
            "--interval",
            "0.05",
            "--settle",
            "0.2",
            str(folder),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # the verdict line, after the warning
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert first.startswith("REJECT  take\\x1b[2J\\nPASS    x.mp4"), first
    _no_raw_control(first + rest + errors)
    warned = [line for line in errors.splitlines() if "not moved" in line]
    assert len(warned) == 1 and "take\\x1b[2J\\nPASS    x.mp4: not moved: " in warned[0], errors
