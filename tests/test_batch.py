"""Batches through the real CLI: every input form, ordering, mixed verdicts, the probe cache and
the progress bar (shown on a terminal only).
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from preflight.testing.media_server import MediaServer

from .conftest import FIXTURES, preflight_script, run_cli

MEDIA = FIXTURES / "media"
ROWS: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]


def _json(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    done = subprocess.run(
        [preflight_script(), "check", "--json", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """clips/a.mp4, clips/B.MOV, clips/notes.txt, clips/sub/c.mp4, clips/sub/skip_me.mp4"""
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    shutil.copy(MEDIA / "fmt_mp4_h264.mp4", root / "a.mp4")
    shutil.copy(MEDIA / "fmt_mov_h264.mov", root / "B.MOV")
    (root / "notes.txt").write_text("not a video")
    shutil.copy(MEDIA / "fps_29.97.mp4", root / "sub" / "c.mp4")
    shutil.copy(MEDIA / "fps_24.mp4", root / "sub" / "skip_me.mp4")
    return root


def test_folder_inputs(tree: Path) -> None:
    flat = _json(str(tree))
    assert [Path(r["source"]).name for r in flat["results"]] == ["B.MOV", "a.mp4"]
    deep = _json("-r", str(tree))
    assert [Path(r["source"]).name for r in deep["results"]] == [
        "B.MOV",
        "a.mp4",
        "c.mp4",
        "skip_me.mp4",
    ]
    picked = _json("-r", "--include", "*.mp4", "--exclude", "skip_*", str(tree))
    assert [Path(r["source"]).name for r in picked["results"]] == ["a.mp4", "c.mp4"]


def test_from_file_and_stdin_mixed_with_urls(tree: Path, tmp_path: Path) -> None:
    with MediaServer(MEDIA) as server:
        url = server.url("fps_30.mp4")
        listing = tmp_path / "list.txt"
        listing.write_text(f"# today's uploads\n{tree / 'a.mp4'}\n\n{url}\n")
        from_file = _json("--allow-private-urls", "--from", str(listing), str(tree / "B.MOV"))
        assert [r["source"] for r in from_file["results"]] == [
            str(tree / "B.MOV"),
            str(tree / "a.mp4"),
            url,
        ]
        assert from_file["summary"]["pass"] == 3
        from_stdin = _json("--allow-private-urls", "--from", "-", stdin=f"{url}\n")
        assert [r["source"] for r in from_stdin["results"]] == [url]
    missing = run_cli("check", "--from", str(tmp_path / "none.txt"))
    assert missing.returncode == 2 and "--from" in missing.stderr


def test_parallel_results_keep_input_order_and_mix_verdicts() -> None:
    files = [str(MEDIA / r["file"]) for r in ROWS]
    doc = _json("--workers", "4", *files)
    assert [r["source"] for r in doc["results"]] == files
    assert [r["verdict"] for r in doc["results"]] == [r["verdict"] for r in ROWS]
    counts = {v: sum(r["verdict"] == v for r in ROWS) for v in ("pass", "reject", "error")}
    assert {k: doc["summary"][k] for k in counts} == counts and doc["summary"]["exit_code"] == 3
    text = run_cli("check", "--workers", "4", *files)
    rows = [
        line.split()[1]
        for line in text.stdout.splitlines()
        if line[:1].isupper() and line.split()[0] in ("PASS", "REJECT", "ERROR")
    ]
    assert rows == files and text.returncode == 3


def test_the_probe_cache(tmp_path: Path) -> None:
    env = {**os.environ, "PREFLIGHT_LEDGER": str(tmp_path / "cache.sqlite3")}
    work = tmp_path / "clips"
    work.mkdir()
    for name in ("fmt_mp4_h264.mp4", "dur_5.5s.mp4", "fps_24.mp4"):
        shutil.copy(MEDIA / name, work / name)
    cold = _json(str(work), env=env)
    assert [r["probe"]["cached"] for r in cold["results"]] == [False] * 3
    warm = _json(str(work), env=env)
    assert [r["probe"]["cached"] for r in warm["results"]] == [True] * 3
    assert [r["facts"] for r in warm["results"]] == [r["facts"] for r in cold["results"]]
    # A changed file is probed again: here it becomes another video altogether.
    shutil.copy(MEDIA / "fps_29.97.mp4", work / "fps_24.mp4")
    changed = _json(str(work), env=env)
    by_name = {Path(r["source"]).name: r for r in changed["results"]}
    assert by_name["fps_24.mp4"]["probe"]["cached"] is False
    assert by_name["fps_24.mp4"]["verdict"] == "reject"
    assert by_name["fmt_mp4_h264.mp4"]["probe"]["cached"] is True
    # A new policy judges the cached facts afresh: 5.5 s passes cometapi but not kling.
    strict = _json("--profile", "kling", str(work / "dur_5.5s.mp4"), env=env)
    (result,) = strict["results"]
    assert result["probe"]["cached"] is True and result["verdict"] == "reject"
    bypass = _json("--no-cache", str(work), env=env)
    assert not any(r["probe"]["cached"] for r in bypass["results"])


def test_the_probe_cache_for_urls(tmp_path: Path) -> None:
    env = {**os.environ, "PREFLIGHT_LEDGER": str(tmp_path / "cache.sqlite3")}
    with MediaServer(MEDIA) as server:
        url = server.url("moov_at_end.mp4")
        first = _json("--allow-private-urls", url, env=env)["results"][0]
        again = _json("--allow-private-urls", url, env=env)["results"][0]
    assert first["probe"]["cached"] is False and again["probe"]["cached"] is True
    assert again["remote"]["requests"] == 1 and again["facts"] == first["facts"]


def test_unwritable_cache_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {**os.environ, "PREFLIGHT_LEDGER": str(blocker / "sub" / "ledger.sqlite3")}
    done = subprocess.run(
        [preflight_script(), "check", str(MEDIA / "fps_24.mp4")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "warning: no probe cache" in done.stderr


def _on_a_terminal(*args: str) -> tuple[str, str]:
    """Run check with stderr on a pseudo-terminal; return (stdout, what the terminal showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [preflight_script(), "check", "--no-cache", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out = proc.communicate(timeout=120)[0]
    os.close(leader)
    return out, shown.decode("utf-8", "replace")


def test_progress_on_a_terminal_only() -> None:
    files = [str(MEDIA / r["file"]) for r in ROWS]
    out, shown = _on_a_terminal("--json", *files)
    assert f"{len(files)}/{len(files)}" in shown and "pass" in shown and "ETA" in shown
    assert json.loads(out)["summary"]["total"] == len(files)  # stdout is untouched
    _, quiet = _on_a_terminal("--json", "--quiet", *files)
    assert "ETA" not in quiet
    piped = run_cli("check", "--json", *files)
    assert "ETA" not in piped.stderr


def test_report_flags_write_every_format(tmp_path: Path) -> None:
    import csv
    import xml.etree.ElementTree as ET

    files = [str(MEDIA / name) for name in ("fmt_mp4_h264.mp4", "fps_29.97.mp4", "err_text.mp4")]
    junit, table, page = tmp_path / "r.xml", tmp_path / "r.csv", tmp_path / "r.html"
    done = run_cli("check", "--junit", str(junit), "--csv", str(table), "--html", str(page), *files)
    assert done.returncode == 3, done.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3"
    assert suite.get("failures") == "1" and suite.get("errors") == "1"
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert [r["verdict"] for r in rows] == ["pass", "reject", "error"]
    html = page.read_text(encoding="utf-8")
    assert all(source in html for source in files) and "data:image/jpeg;base64," in html
    unwritable = run_cli("check", "--junit", str(tmp_path / "no" / "such" / "r.xml"), files[0])
    assert unwritable.returncode == 2 and "--junit" in unwritable.stderr


def test_folder_walk_keeps_unresolvable_links_as_sources(tmp_path: Path) -> None:
    from preflight.sources import expand_sources

    (tmp_path / "sub").mkdir()
    shutil.copy(MEDIA / "fmt_mp4_h264.mp4", tmp_path / "a.mp4")
    (tmp_path / "self.mp4").symlink_to("self.mp4")
    (tmp_path / "gone.mov").symlink_to("missing.mov")
    (tmp_path / "up.mp4").symlink_to(".")  # a folder: never walked into, never a source
    (tmp_path / "sub" / "loop").symlink_to("..")
    (tmp_path / "self.txt").symlink_to("self.txt")  # not a video name
    found = expand_sources([str(tmp_path)], recursive=True)
    assert [Path(s).name for s in found] == ["a.mp4", "gone.mov", "self.mp4"]
