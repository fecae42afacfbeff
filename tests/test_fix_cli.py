"""`preflight fix` through the real console script: JSON against its schema, exit codes, usage
errors, and Ctrl-C or a killed ffmpeg leaving no output, no temp file and no ffmpeg behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from preflight.schemas import load_schema

from .conftest import FIXTURES, preflight_script, run_cli

MEDIA = FIXTURES / "media"
SCHEMA = load_schema("fix.schema.json")
DEADLINE_S = 60.0  # generous: only a hang takes this long


def test_json_matches_the_schema_and_exit_codes_follow_check(tmp_path: Path) -> None:
    for name in ("fps_29.97.mp4", "fmt_mp4_h264.mp4", "audio_only.mp4"):
        shutil.copyfile(MEDIA / name, tmp_path / name)
    sources = [str(tmp_path / n) for n in ("fps_29.97.mp4", "fmt_mp4_h264.mp4", "audio_only.mp4")]
    done = run_cli("fix", "--json", "--preset", "ultrafast", *sources)
    assert "Traceback" not in done.stderr
    document = json.loads(done.stdout)
    Draft202012Validator(SCHEMA).validate(document)
    statuses = [r["status"] for r in document["results"]]
    assert statuses == ["fixed", "nothing_to_fix", "unfixable"]
    assert done.returncode == 1 == document["summary"]["exit_code"]
    fixed = document["results"][0]
    assert fixed["lossless"] and fixed["after"]["verdict"] == "pass"
    assert fixed["output"] == str(tmp_path / "fps_29.97.fixed.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["fps_29.97.mp4", "fps_29.97.fixed.mp4", "fmt_mp4_h264.mp4", "audio_only.mp4"]
    )
    lines = run_cli("fix", "--jsonl", "--dry-run", *sources[:1], "--force")
    (line,) = [json.loads(x) for x in lines.stdout.splitlines()]
    Draft202012Validator(SCHEMA["$defs"]["result"] | {"$defs": SCHEMA["$defs"]}).validate(line)
    assert line["status"] == "planned" and lines.returncode == 0


def test_human_output_shows_the_plan_and_before_after(tmp_path: Path) -> None:
    shutil.copyfile(MEDIA / "fps_29.97.mp4", tmp_path / "clip.mp4")
    done = run_cli("fix", str(tmp_path / "clip.mp4"), "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "[lossless] retime (fps.not_allowed)" in done.stdout
    assert "REJECT 29.97 fps" in done.stdout and "→ PASS 30 fps" in done.stdout
    assert "MP4, lossless\n  wrote " in done.stdout  # then what was written
    again = run_cli("fix", str(tmp_path / "clip.mp4"))
    assert again.returncode == 2 and "--force" in again.stdout  # never over an existing output
    assert again.stdout.startswith(f"SKIPPED   {tmp_path / 'clip.mp4'}: ")


def test_unreadable_sources_exit_3_and_usage_errors_exit_2(tmp_path: Path) -> None:
    shutil.copyfile(MEDIA / "err_text.mp4", tmp_path / "text.mp4")
    done = run_cli("fix", str(tmp_path / "text.mp4"))
    assert done.returncode == 3 and "ERROR" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["text.mp4"]
    url = run_cli("fix", "https://example.com/clip.mp4")
    assert url.returncode == 2 and "download it first" in url.stderr
    two = run_cli(
        "fix", "-o", str(tmp_path / "o.mp4"), str(MEDIA / "fps_25.mp4"), str(MEDIA / "fps_50.mp4")
    )
    assert two.returncode == 2 and "one SOURCE" in two.stderr
    for done in (url, two):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def _slow_source(ffmpeg: str, folder: Path) -> Path:
    # 640x360, 20 s: needs a scale (a re-encode), and `--preset veryslow` makes it last seconds
    out = folder / "slow.mp4"
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=10"),
            *("-c:v", "libx264", "-preset", "ultrafast", str(out)),
        ],
        check=True,
        timeout=120,
    )
    return out


def _ffmpeg_child(parent: subprocess.Popen[str]) -> int:
    """The pid of the ffmpeg that `parent` started (waits for it to appear)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and parent.poll() is None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if (
                ppid == parent.pid
                and cmdline
                and b"ffmpeg" in os.path.basename(cmdline[0])  # the pinned one: ffmpeg-linux-…
                and b"-preset" in cmdline
            ):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"ffmpeg never started: {parent.communicate()}")


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "kill-ffmpeg"])
def test_an_interrupted_fix_leaves_no_output_no_temp_and_no_ffmpeg(
    ffmpeg: str, tmp_path: Path, how: str
) -> None:
    source = _slow_source(ffmpeg, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen(
        [preflight_script(), "fix", "--preset", "veryslow", str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        child = _ffmpeg_child(proc)
        time.sleep(0.3)  # let it write part of the temp file
        assert any(".tmp-" in p.name for p in tmp_path.iterdir())
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        elif how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.kill(child, signal.SIGKILL)
        out, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err
    if how == "ctrl-c":
        assert proc.returncode == 130 and "interrupted" in err
    elif how == "sigterm":
        assert proc.returncode == 143 and "terminated" in err
    else:
        assert proc.returncode == 1 and "killed (SIGKILL)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not _alive(child)


def test_watch_sort_fix_puts_a_fixed_copy_in_passed(tmp_path: Path) -> None:
    import threading

    from preflight.pipeline import CheckOptions
    from preflight.policy import load_policy
    from preflight.watch import WatchOptions, watch

    seen: list[object] = []
    fixes: list[str] = []  # fixes run beside the judging: wait for both to end
    stop = threading.Event()
    options = WatchOptions(interval_s=0.05, settle_s=0.3, sort=True, fix=True)
    thread = threading.Thread(
        target=watch,
        args=(tmp_path,),
        kwargs={
            "policy": load_policy(),
            "check_options": CheckOptions(),
            "options": options,
            "on_result": lambda result, moved: seen.append(result),
            "on_event": lambda event: fixes.append(event.kind),
            "stop": stop,
        },
    )
    thread.start()
    try:
        shutil.copyfile(MEDIA / "fps_29.97.mp4", tmp_path / "ntsc.mp4")
        shutil.copyfile(MEDIA / "audio_only.mp4", tmp_path / "sound.mp4")
        deadline = time.monotonic() + DEADLINE_S
        while (len(seen) < 2 or fixes.count("fixed") < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    assert sorted(p.name for p in (tmp_path / "passed").iterdir()) == ["ntsc.fixed.mp4"]
    rejected = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert rejected == [
        "ntsc.mp4",
        "ntsc.mp4.preflight.json",
        "sound.mp4",
        "sound.mp4.preflight.json",
    ]
    assert run_cli("check", str(tmp_path / "passed" / "ntsc.fixed.mp4")).returncode == 0
