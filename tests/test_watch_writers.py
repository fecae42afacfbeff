"""An export that pauses mid-write: a real writer process writes a real MP4 in two halves with a
pause longer than the settle time. It must end in passed/, whole, never in rejected/, and leave
no report behind — with inotify (the writer still has it open) and without (the half file reads
as unfinished and is held in place until it changes).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from preflight.pipeline import CheckOptions
from preflight.policy import load_policy
from preflight.verdict import Result
from preflight.watch import WatchEvent, WatchOptions, watch

from .conftest import FIXTURES, preflight_script

MEDIA = FIXTURES / "media"
SETTLE_S = 0.3
PAUSE_S = 4 * SETTLE_S  # over the settle time, with room for a slow machine to notice
DEADLINE_S = 30.0

# The writer: opens the file once, writes half, says so, pauses, writes the rest, closes, says so
# (as an exporter does between passes). It is a process of its own, as an exporter is.
WRITER = """
import sys, time
source, target, pause, split = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
data = open(source, "rb").read()
split = split or len(data) // 2
with open(target, "wb") as out:
    out.write(data[:split])
    out.flush()
    print("half", flush=True)
    time.sleep(pause)
    out.write(data[split:])
print("done", flush=True)
"""

# moov at the end: the first half has no index (no_moov); moov first: it points past the end of
# the first half (truncated). Both read as unfinished, so even without inotify they are held.
UNFINISHED = {"no_moov": MEDIA / "moov_at_end.mp4", "truncated": MEDIA / "dur_7.0s.mp4"}
# A fragmented MP4 cut after its first fragment (moov 28+707, moof+mdat to byte 4648) reads as a
# whole 1 s clip: rejected for its duration, not held. Only inotify can tell it is being written.
FRAGMENTED = MEDIA / "fragmented.mp4"
FIRST_FRAGMENT_END = 4648
EXPORTS = {
    **{k: (v, 0) for k, v in UNFINISHED.items()},
    "fragmented": (FRAGMENTED, FIRST_FRAGMENT_END),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_slowly(source: Path, target: Path, folder: Path, split: int = 0) -> list[str]:
    """Run the writer to its end (first `split` bytes, default half, then a pause, then the
    rest); meanwhile the file must never be moved to rejected/."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(target), str(PAUSE_S), str(split)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        said = [writer.stdout.readline().strip()]
        while writer.poll() is None:
            assert not (folder / "rejected").exists(), "a file still being written was rejected"
            time.sleep(0.02)
        said.append(writer.stdout.read().strip())
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(timeout=DEADLINE_S)
    assert said == ["half", "done"] and writer.returncode == 0
    return said


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def no_reports(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".preflight.json")]


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_the_watch_command_waits_for_the_writer_to_close_the_file(
    tmp_path: Path, kind: str
) -> None:
    source, split = EXPORTS[kind]
    folder = tmp_path / "exports"
    folder.mkdir()
    command = [preflight_script(), "watch", "--sort", "--interval", "0.05"]
    proc = subprocess.Popen(
        [*command, "--settle", str(SETTLE_S), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # the watch is listening (a file found at start is judged all the same)
        write_slowly(source, folder / "export.mp4", folder, split)
        wait_for(lambda: (folder / "passed" / "export.mp4").exists(), "sorted into passed/")
        time.sleep(2 * SETTLE_S)  # a second verdict, if any, would come by now
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=DEADLINE_S)
    assert sha256(folder / "passed" / "export.mp4") == sha256(source)  # whole
    assert not (folder / "rejected").exists() and not (folder / "export.mp4").exists()
    assert no_reports(folder) == []
    assert out.splitlines() == ["PASS    export.mp4  -> passed/export.mp4"], err
    log = [json.loads(line) for line in (folder / ".preflight" / "verdicts.jsonl").open()]
    assert [(line["event"], line["verdict"]) for line in log] == [("verdict", "pass")]
    # the whole export was judged, not its first part
    assert log[0]["facts"]["duration"] == (7.0 if kind == "truncated" else 3.0)


@pytest.mark.parametrize("kind", sorted(UNFINISHED))
def test_without_inotify_an_unfinished_export_is_held_then_judged_when_it_changes(
    tmp_path: Path, kind: str
) -> None:
    # notify=False stands for a platform or a share without close events: the half file is
    # judged after the settle time, reads as unfinished, and must be held, not sorted.
    source = UNFINISHED[kind]
    seen: list[tuple[Result, Path | None]] = []
    events: list[WatchEvent] = []
    stop = threading.Event()
    options = WatchOptions(interval_s=0.05, settle_s=SETTLE_S, sort=True, notify=False)
    thread = threading.Thread(
        target=watch,
        args=(tmp_path,),
        kwargs={
            "policy": load_policy(),
            "check_options": CheckOptions(),
            "options": options,
            "on_result": lambda result, moved: seen.append((result, moved)),
            "on_event": events.append,
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    try:
        write_slowly(source, tmp_path / "export.mp4", tmp_path)
        wait_for(lambda: bool(seen), "a final verdict")
        time.sleep(2 * SETTLE_S)
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    assert not thread.is_alive()
    ((result, moved_to),) = seen
    assert result.verdict == "pass" and moved_to == tmp_path / "passed" / "export.mp4"
    assert sha256(moved_to) == sha256(source)
    assert not (tmp_path / "rejected").exists() and no_reports(tmp_path) == []
    # The half file was judged during the pause (the settle time passed) and held in place.
    held = [e for e in events if e.kind == "held"]
    assert held and all(e.result is not None and e.result.error is not None for e in held)
    assert {e.result.error.kind for e in held if e.result and e.result.error} == {kind}
    log = [json.loads(line) for line in (tmp_path / ".preflight" / "verdicts.jsonl").open()]
    assert [line["event"] for line in log] == ["held"] * len(held) + ["verdict"]
    assert log[0]["moved_to"] is None and log[-1]["verdict"] == "pass"
