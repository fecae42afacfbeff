"""Hostile input to the real `preflight` script: names that are not UTF-8, symlink loops, policy
and request files nested a hundred thousand deep, report paths that are devices or FIFOs, and
file names a spreadsheet would run as formulas. Each must end in a verdict or one line, never a
traceback, and must never damage what the path named.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import FIXTURES, preflight_script, run_cli

PASSES = FIXTURES / "media" / "fmt_mp4_h264.mp4"
# b"\xff\xfe" is not UTF-8: Python holds it as the surrogate escapes "\udcff\udcfe".
ODD_NAME = os.fsdecode(b"\xff\xfe.mp4")
ODD_SHOWN = "\\xff\\xfe.mp4"  # how every human-facing output shows it
DEADLINE_S = 60.0  # generous: only a hang takes this long


def run(
    *args: str, cwd: Path | None = None, stdout_strict: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real script, like run_cli, but in `cwd` and optionally with a strict UTF-8 stdout.

    A strict stdout is what a user's en_US.UTF-8 terminal gives Python (this machine's C.UTF-8
    locale would quietly use surrogateescape and hide the crash).
    """
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if stdout_strict:
        env["PYTHONIOENCODING"] = "utf-8:strict"
    done = subprocess.run(
        [preflight_script(), *args],
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
    # Decoded leniently here: the test, not the script, must tolerate odd bytes.
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "surrogateescape"),
        done.stderr.decode("utf-8", "surrogateescape"),
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# --- A.5: a file name that is not UTF-8 -------------------------------------------------------


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("named", [True, False], ids=["named", "walked"])
def test_a_name_that_is_not_utf8_is_checked_like_any_other(
    tmp_path: Path, cache: bool, named: bool
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(PASSES, folder / ODD_NAME)
    source = str(folder / ODD_NAME) if named else str(folder)
    flags = ["--ledger", str(tmp_path / "ledger.sqlite3")] if cache else ["--no-cache"]
    for attempt in ("first", "second"):
        done = run("check", "--json", *flags, source)
        assert done.returncode == 0, done.stdout + done.stderr
        (result,) = json.loads(done.stdout)["results"]
        # JSON keeps the exact surrogate escapes: they turn back into the file's own bytes.
        assert os.fsencode(result["source"]) == os.fsencode(str(folder / ODD_NAME))
        assert result["verdict"] == "pass" and result["error"] is None
        # With the cache, the second run reads the facts stored under the name's key.
        assert result["probe"]["cached"] is (cache and attempt == "second")


def test_every_output_shows_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    shutil.copy(PASSES, tmp_path / ODD_NAME)
    csv_out, html_out, junit_out = (tmp_path / f"out.{e}" for e in ("csv", "html", "xml"))
    reports = ["--csv", str(csv_out), "--html", str(html_out), "--junit", str(junit_out)]

    human = run("check", *reports, ".", cwd=tmp_path, stdout_strict=True)
    assert human.returncode == 0 and "Traceback" not in human.stderr, human.stderr
    assert f"PASS    {ODD_SHOWN}" in human.stdout
    human.stdout.encode("utf-8")  # valid UTF-8 text: no raw undecodable byte reached it

    rows = list(csv.reader(io.StringIO(csv_out.read_text(encoding="utf-8"), newline="")))
    assert rows[1][:2] == [ODD_SHOWN, "pass"]
    case = ET.parse(junit_out).getroot().find("testsuite/testcase")
    assert case is not None and case.get("name") == ODD_SHOWN
    page = html_out.read_text(encoding="utf-8")
    assert f'<h2 class="source">{ODD_SHOWN}</h2>' in page
    assert page.count("data:image/jpeg;base64,") == 1  # its thumbnail too

    lines = run("check", "--jsonl", ".", cwd=tmp_path, stdout_strict=True)
    assert lines.returncode == 0, lines.stderr
    assert os.fsencode(json.loads(lines.stdout)["source"]) == b"\xff\xfe.mp4"


def test_watch_shows_and_logs_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONIOENCODING"] = "utf-8:strict"
    args = ["watch", "--interval", "0.05", "--settle", "0.3", str(folder)]
    proc = subprocess.Popen(
        [preflight_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    log = folder / ".preflight" / "verdicts.jsonl"
    try:
        shutil.copy(PASSES, folder / ODD_NAME)
        deadline = time.monotonic() + DEADLINE_S
        while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the line on stdout follows the log line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and b"Traceback" not in err, err
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert os.fsencode(record["source"]) == os.fsencode(str(folder / ODD_NAME))
    assert record["verdict"] == "pass"
    assert f"PASS    {ODD_SHOWN}".encode() in out


# --- F.13: symlink loops in a folder ----------------------------------------------------------


def _tangled_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tangled"
    folder.mkdir()
    shutil.copy(PASSES, folder / "good.mp4")
    (folder / "self.mp4").symlink_to("self.mp4")  # points at itself
    (folder / "ping.mp4").symlink_to("pong.mp4")  # a two-link cycle
    (folder / "pong.mp4").symlink_to("ping.mp4")
    (folder / "gone.mp4").symlink_to("nothing-here.mp4")  # dangling
    (folder / "up.mp4").symlink_to("..")  # a folder holding the link itself
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to("..")
    (folder / "loop.txt").symlink_to("loop.txt")  # not a video name: not a source
    return folder


@pytest.mark.parametrize("recursive", [[], ["--recursive"]], ids=["flat", "recursive"])
def test_symlink_loops_are_error_sources_and_the_rest_is_checked(
    tmp_path: Path, recursive: list[str]
) -> None:
    folder = _tangled_folder(tmp_path)
    done = run_cli("check", "--json", "--no-cache", *recursive, str(folder), timeout=DEADLINE_S)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, done.stderr  # some sources are errors
    results = {Path(r["source"]).name: r for r in json.loads(done.stdout)["results"]}
    assert sorted(results) == ["gone.mp4", "good.mp4", "ping.mp4", "pong.mp4", "self.mp4"]
    assert results["good.mp4"]["verdict"] == "pass"
    assert results["gone.mp4"]["error"]["kind"] == "missing"
    for name in ("self.mp4", "ping.mp4", "pong.mp4"):
        assert results[name]["verdict"] == "error"
        assert results[name]["error"]["kind"] == "unreadable"
        assert "symbolic links" in results[name]["error"]["message"]


def test_watch_skips_symlink_loops_and_judges_the_rest(tmp_path: Path) -> None:
    folder = _tangled_folder(tmp_path)
    args = ["watch", "--recursive", "--interval", "0.05", "--settle", "0.3", str(folder)]
    proc = subprocess.Popen(
        [preflight_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    log = folder / ".preflight" / "verdicts.jsonl"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # several more scans over the loops
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    # Symlinks are never followed by the watch (a move must not act on a link's target).
    assert [(Path(r["source"]).name, r["verdict"]) for r in records] == [("good.mp4", "pass")]


# --- F.14: policy and request files nested too deep, too big, not UTF-8 -----------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        _nested(100_000),
        '{"extends": "cometapi", "name": ' + _nested(100_000) + "}",
        '{"extends": "cometapi", "warnings": {"disabled": ' + _nested(100_000) + "}}",
    ],
    ids=["top-level", "in-a-value", "in-a-merged-object"],
)
def test_a_policy_nested_100000_deep_is_one_line_exit_2(tmp_path: Path, body: str) -> None:
    policy = tmp_path / "deep.json"
    policy.write_text(body)
    line = one_line_error(run_cli("check", "--policy", str(policy), str(PASSES)), 2)
    assert "nested too deeply" in line and str(policy) in line


def test_a_policy_over_1_mib_is_refused_unread(tmp_path: Path) -> None:
    policy = tmp_path / "huge.json"
    # A valid policy, padded: only its size is wrong.
    policy.write_text('{"extends": "cometapi"' + " " * (1024 * 1024) + "}")
    line = one_line_error(run_cli("check", "--policy", str(policy), str(PASSES)), 2)
    assert "over 1 MiB" in line
    just_under = tmp_path / "big.json"
    just_under.write_text('{"extends": "cometapi"' + " " * (1024 * 1024 - 100) + "}")
    assert run_cli("check", "--policy", str(just_under), str(PASSES)).returncode == 0


def test_a_policy_that_is_not_utf8_or_extends_nothing_known_is_one_line(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.json"
    latin.write_bytes(b'{"extends": "cometapi", "name": "caf\xe9"}')
    assert "not UTF-8" in one_line_error(run_cli("check", "--policy", str(latin), str(PASSES)), 2)
    # `extends` names only shipped profiles, so a cycle through house files cannot be written.
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"extends": "house"}')
    one_line_error(run_cli("check", "--policy", str(unknown), str(PASSES)), 2)


@pytest.mark.parametrize("from_stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize(
    "body",
    [
        _nested(100_000),
        '{"video_url": "https://example.com/a.mp4", "extra": ' + _nested(990) + "}",
        '{"video_url": "https://example.com/a.mp4", "x": ' + '{"a": ' * 990 + "1" + "}" * 991,
    ],
    ids=["too-deep-to-parse", "deep-array-to-validate", "deep-object-to-validate"],
)
def test_validate_request_nested_too_deep_is_exit_2(
    tmp_path: Path, body: str, from_stdin: bool
) -> None:
    path = tmp_path / "body.json"
    path.write_text(body)
    done = run_cli("validate-request", "-" if from_stdin else str(path), stdin=body)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "nested too deeply" in done.stdout + done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1


# --- F.15: report paths that are not plain files -----------------------------------------------


def test_a_report_into_a_fifo_is_written_through_to_its_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "junit.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:  # blocks until the writer opens it
            received.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done = run_cli("check", "--junit", str(fifo), str(PASSES), timeout=DEADLINE_S)
    reader.join(DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not a regular file
    assert ET.fromstring(received[0]).get("tests") == "1"


def test_a_report_through_a_symlink_replaces_the_target_and_keeps_its_mode(
    tmp_path: Path,
) -> None:
    target = tmp_path / "reports" / "latest.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "report.csv"
    link.symlink_to(os.path.relpath(target, tmp_path))
    done = run_cli("check", "--csv", str(link), str(PASSES))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, tmp_path)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text().startswith("source,verdict,")
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest.csv"]  # no temp left


def test_a_dangling_symlink_report_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.xml"
    link.symlink_to("made.xml")
    assert run_cli("check", "--junit", str(link), str(PASSES)).returncode == 0
    assert link.is_symlink() and (tmp_path / "made.xml").read_text().startswith("<?xml")


@pytest.mark.parametrize("device", [(1, 3), (1, 7)], ids=["null-like", "full-like"])
def test_a_report_onto_a_device_writes_to_it_and_leaves_it_a_device(
    tmp_path: Path, device: tuple[int, int]
) -> None:
    node = tmp_path / "device"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(*device))
    except PermissionError:
        pytest.fail("making a device node needs root (CI runs the suite as root)")
    done = run_cli("check", "--junit", str(node), str(PASSES))
    if device == (1, 7):  # /dev/full: every write fails with ENOSPC
        line = one_line_error(done, 2)
        assert line == f"preflight: cannot write --junit {node}: No space left on device"
    else:
        assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert os.lstat(node).st_rdev == os.makedev(*device)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device"]  # no temp file left


def test_dev_null_stays_a_device(tmp_path: Path) -> None:
    before = os.lstat("/dev/null")
    assert run_cli("check", "--html", "/dev/null", str(PASSES)).returncode == 0
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


@pytest.mark.parametrize(
    "name", ["-", "/dev/stdout", "/proc/self/fd/1", "link-to-stdout"], ids=lambda n: n
)
def test_a_report_onto_stdout_is_all_stdout_holds(tmp_path: Path, name: str) -> None:
    # Issue 22, item 8: `--csv -` is read by a spreadsheet or a script; no text mixed into it.
    if name == "link-to-stdout":
        (tmp_path / name).symlink_to("/dev/stdout")
    done = run("check", "--csv", name, str(PASSES), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    assert len(table) == 2, done.stdout
    rows = list(csv.reader(table))
    assert rows[0][:2] == ["source", "verdict"] and rows[1][:2] == [str(PASSES), "pass"]
    expected = ["link-to-stdout"] if name == "link-to-stdout" else []
    assert sorted(p.name for p in tmp_path.iterdir()) == expected  # no file named "-"


def test_a_report_onto_stdout_redirected_to_a_file_is_the_whole_file(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.txt"
    with open(out, "wb") as stdout:
        done = subprocess.run(
            [preflight_script(), "check", "--csv", "/dev/stdout", str(PASSES)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    header, row = out.read_text().splitlines()
    assert header.startswith("source,") and row.endswith(",0")


def test_a_report_onto_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    line = one_line_error(run_cli("check", "--csv", str(tmp_path), str(PASSES)), 2)
    assert line == f"preflight: cannot write --csv {tmp_path}: is a folder, not a file"


# --- F.16: CSV formula injection ----------------------------------------------------------------


def test_csv_cells_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    walked = ["+SUM(1+1).mp4", "@x.mp4", "-neg.mp4", "\tTAB.mp4"]
    for name in walked:
        shutil.copy(PASSES, tmp_path / name)
    named = "=cmd|' /C calc'!A0.mp4"  # holds a slash: a missing path, still a row
    done = run("check", "--csv", "out.csv", ".", named, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    by_source = {row["source"]: row for row in rows}
    assert sorted(by_source) == sorted("'" + name for name in [*walked, named])
    assert by_source["'" + named]["verdict"] == "error"
    for name in walked:
        row = by_source["'" + name]
        assert row["verdict"] == "pass"
        # Numbers stay numbers, unquoted.
        assert row["width"] == "1280" and row["duration"] == "3.0" and row["rotation"] == "0"
    harmless = tmp_path / "plain"
    harmless.mkdir()
    shutil.copy(PASSES, harmless / "a=b.mp4")
    run("check", "--csv", "plain.csv", "plain", cwd=tmp_path)
    with open(tmp_path / "plain.csv", encoding="utf-8", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["source"] == "plain/a=b.mp4"  # only a leading character is dangerous
