"""The watch folder on real files: copies of the ffmpeg-made fixtures, `watch` in a real thread.

Waits have generous deadlines; nothing asserts how fast a verdict comes, only what and how often.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from preflight.pipeline import CheckOptions
from preflight.policy import load_policy
from preflight.verdict import Result
from preflight.watch import WatchOptions, describe, watch

from .conftest import FIXTURES, ROOT

MEDIA = FIXTURES / "media"
PASSES = MEDIA / "fmt_mp4_h264.mp4"
REJECTED = MEDIA / "fps_29.97.mp4"
UNREADABLE = MEDIA / "err_random.mp4"
DEADLINE_S = 30.0  # generous: only a broken watch takes this long

Seen = list[tuple[Result, Path | None]]


class Watcher:
    """`watch` running in a thread; `seen` collects (result, moved_to) in order."""

    def __init__(self, folder: Path, options: WatchOptions) -> None:
        self.folder = folder
        self.options = options
        self.seen: Seen = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failed: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            watch(
                self.folder,
                policy=load_policy(),
                check_options=CheckOptions(),
                options=self.options,
                on_result=self._on_result,
                stop=self.stop,
            )
        except BaseException as exc:
            self.failed.append(exc)

    def _on_result(self, result: Result, moved_to: Path | None) -> None:
        with self.lock:
            self.seen.append((result, moved_to))

    def results(self) -> Seen:
        with self.lock:
            return list(self.seen)

    def wait_for(self, count: int) -> Seen:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert not self.failed, self.failed
            if len(self.results()) >= count:
                return self.results()
            time.sleep(0.02)
        raise AssertionError(f"expected {count} verdicts, got {self.results()}")

    def wait_until(self, done: Callable[[Seen], bool]) -> Seen:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert not self.failed, self.failed
            if done(self.results()):
                return self.results()
            time.sleep(0.02)
        raise AssertionError(f"condition never met; verdicts: {self.results()}")


@contextmanager
def watching(folder: Path, **changes: object) -> Iterator[Watcher]:
    settings: dict[str, object] = {"interval_s": 0.05, "settle_s": 0.3, **changes}
    watcher = Watcher(folder, WatchOptions(**settings))  # type: ignore[arg-type]
    watcher.thread.start()
    try:
        yield watcher
    finally:
        watcher.stop.set()
        watcher.thread.join(timeout=DEADLINE_S)
    assert not watcher.thread.is_alive(), "watch did not return after stop was set"
    assert not watcher.failed, watcher.failed


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verdict_lines(folder: Path) -> list[dict[str, object]]:
    log = folder / ".preflight" / "verdicts.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def names(seen: Seen) -> list[str]:
    return [Path(r.source).name for r, _ in seen]


def test_a_new_passing_file_is_judged_once_and_sorted_into_passed(tmp_path: Path) -> None:
    with watching(tmp_path, sort=True) as watcher:
        shutil.copyfile(PASSES, tmp_path / "clip.mp4")
        (result, moved_to), *more = watcher.wait_for(1)
        time.sleep(1.0)  # many scans more: the moved file must not come back as a second verdict
    assert not more and len(watcher.results()) == 1
    assert result.verdict == "pass"
    assert moved_to == tmp_path / "passed" / "clip.mp4"
    assert sha256(moved_to) == sha256(PASSES)
    assert not (tmp_path / "clip.mp4").exists()
    assert not (tmp_path / "passed" / "clip.mp4.preflight.json").exists()  # only for problems
    (line,) = verdict_lines(tmp_path)
    assert line["verdict"] == "pass"
    assert line["source"] == str(tmp_path / "clip.mp4")
    assert line["moved_to"] == str(moved_to)
    assert line["facts"]["fps"] == 30  # type: ignore[index]
    offset = datetime.fromisoformat(str(line["checked_at"])).utcoffset()
    assert offset is not None and offset.total_seconds() == 0  # UTC


def test_a_file_written_slowly_is_judged_once_after_it_is_complete(tmp_path: Path) -> None:
    data = PASSES.read_bytes()
    piece = len(data) // 5 + 1
    target = tmp_path / "export.mp4"
    # settle_s is several times the 0.15 s gap between pieces, so a slow test machine still
    # keeps the file growing within the settling time; a watch that judged early sees a
    # truncated file (an error) and then judges the finished one a second time.
    with watching(tmp_path, settle_s=1.0) as watcher:
        for start in range(0, len(data), piece):
            with open(target, "ab") as stream:
                stream.write(data[start : start + piece])
            time.sleep(0.15)
        (result, moved_to), *_ = watcher.wait_for(1)
        time.sleep(1.5)  # more than settle_s: a second verdict would have arrived by now
    assert len(watcher.results()) == 1, [r.to_dict() for r, _ in watcher.results()]
    assert result.verdict == "pass", result.to_dict()
    assert moved_to is None  # no sort: it stays
    assert target.read_bytes() == data
    assert len(verdict_lines(tmp_path)) == 1


def test_rejected_and_unreadable_files_go_to_rejected_with_an_explanation(tmp_path: Path) -> None:
    with watching(tmp_path, sort=True) as watcher:
        shutil.copyfile(REJECTED, tmp_path / "ntsc.mp4")
        shutil.copyfile(UNREADABLE, tmp_path / "noise.mov")
        seen = watcher.wait_for(2)
    by_name = {Path(r.source).name: (r, moved) for r, moved in seen}
    assert set(by_name) == {"ntsc.mp4", "noise.mov"}
    for name, verdict, original in (
        ("ntsc.mp4", "reject", REJECTED),
        ("noise.mov", "error", UNREADABLE),
    ):
        result, moved_to = by_name[name]
        assert result.verdict == verdict
        assert moved_to == tmp_path / "rejected" / name
        assert sha256(moved_to) == sha256(original)
        assert not (tmp_path / name).exists()
        explanation = json.loads((tmp_path / "rejected" / f"{name}.preflight.json").read_text())
        assert explanation == result.to_dict()
    assert [v.rule for v in by_name["ntsc.mp4"][0].violations] == ["fps.not_allowed"]
    assert by_name["noise.mov"][0].error is not None
    assert not (tmp_path / "passed").exists()
    lines = verdict_lines(tmp_path)
    assert sorted(str(line["verdict"]) for line in lines) == ["error", "reject"]
    assert {line["moved_to"] for line in lines} == {
        str(tmp_path / "rejected" / "ntsc.mp4"),
        str(tmp_path / "rejected" / "noise.mov"),
    }


def test_a_name_clash_in_passed_never_overwrites(tmp_path: Path) -> None:
    passed = tmp_path / "passed"
    passed.mkdir()
    earlier = passed / "fmt.mp4"
    shutil.copyfile(MEDIA / "fps_24.mp4", earlier)
    earlier_hash = sha256(earlier)
    with watching(tmp_path, sort=True) as watcher:
        shutil.copyfile(PASSES, tmp_path / "fmt.mp4")
        (_, first), *_ = watcher.wait_for(1)
        shutil.copyfile(MEDIA / "fps_30.mp4", tmp_path / "fmt.mp4")
        seen = watcher.wait_for(2)
    assert first == passed / "fmt (1).mp4"
    assert seen[1][1] == passed / "fmt (2).mp4"
    assert sha256(earlier) == earlier_hash != sha256(PASSES)
    assert sha256(passed / "fmt (1).mp4") == sha256(PASSES)
    assert sha256(passed / "fmt (2).mp4") == sha256(MEDIA / "fps_30.mp4")
    assert sorted(p.name for p in passed.iterdir()) == ["fmt (1).mp4", "fmt (2).mp4", "fmt.mp4"]


def test_a_failed_move_keeps_the_file_and_reports_no_destination(tmp_path: Path) -> None:
    (tmp_path / "passed").write_text("a file where the passed/ folder should be")
    with watching(tmp_path, sort=True) as watcher:
        shutil.copyfile(PASSES, tmp_path / "clip.mp4")
        ((result, moved_to),) = watcher.wait_for(1)
        time.sleep(0.8)  # more than settle_s: the file stays, and is not judged again
    assert len(watcher.results()) == 1
    assert result.verdict == "pass" and moved_to is None
    assert sha256(tmp_path / "clip.mp4") == sha256(PASSES)
    (line,) = verdict_lines(tmp_path)
    assert line["moved_to"] is None and "not moved" in str(line["move_error"])
    assert "not moved" in describe(tmp_path, result, moved_to, sort=True)


def test_a_changed_file_is_judged_again_an_unchanged_one_never(tmp_path: Path) -> None:
    steady = tmp_path / "steady.mp4"
    edited = tmp_path / "edited.mp4"
    shutil.copyfile(PASSES, steady)
    shutil.copyfile(PASSES, edited)
    with watching(tmp_path) as watcher:
        watcher.wait_for(2)
        edited.write_bytes(REJECTED.read_bytes())  # re-exported in place with new content
        watcher.wait_for(3)
        # A late file proves the loop kept scanning (it needs settle_s of scans to be judged)
        # while `steady` sat unchanged through all of them.
        time.sleep(0.5)
        shutil.copyfile(PASSES, tmp_path / "late.mp4")
        seen = watcher.wait_for(4)
        time.sleep(0.5)
    seen = watcher.results()
    assert sorted(names(seen)) == ["edited.mp4", "edited.mp4", "late.mp4", "steady.mp4"]
    edits = [r.verdict for r, _ in seen if Path(r.source) == edited]
    assert edits == ["pass", "reject"]
    assert len(verdict_lines(tmp_path)) == 4


def test_ignores_hidden_foreign_and_own_files_and_recurses_when_asked(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "passed").mkdir()
    shutil.copyfile(PASSES, tmp_path / "UPPER.MOV")  # include matches case-insensitively
    shutil.copyfile(PASSES, tmp_path / "sub" / "nested.m4v")
    shutil.copyfile(PASSES, tmp_path / ".dotfile.mp4")
    shutil.copyfile(PASSES, tmp_path / "notes.txt")
    shutil.copyfile(PASSES, tmp_path / ".hidden" / "inside.mp4")
    shutil.copyfile(PASSES, tmp_path / "passed" / "already.mp4")
    with watching(tmp_path, recursive=True, sort=True) as watcher:
        seen = watcher.wait_for(2)
        time.sleep(0.8)  # more than settle_s: the ignored files would have been judged by now
    seen = watcher.results()
    assert sorted(names(seen)) == ["UPPER.MOV", "nested.m4v"]
    moved = {Path(r.source).name: m for r, m in seen}
    assert moved["nested.m4v"] == tmp_path / "passed" / "sub" / "nested.m4v"  # keeps its subfolder
    assert moved["UPPER.MOV"] == tmp_path / "passed" / "UPPER.MOV"
    for left in (".dotfile.mp4", "notes.txt", ".hidden/inside.mp4", "passed/already.mp4"):
        assert (tmp_path / left).exists(), left


def test_without_recursive_subfolders_are_not_watched(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copyfile(PASSES, tmp_path / "sub" / "nested.mp4")
    with watching(tmp_path) as watcher:
        shutil.copyfile(PASSES, tmp_path / "top.mp4")
        watcher.wait_for(1)
        time.sleep(0.8)
    assert names(watcher.results()) == ["top.mp4"]


def test_an_empty_file_waits_then_is_judged_once(tmp_path: Path) -> None:
    with watching(tmp_path) as watcher:
        (tmp_path / "placeholder.mp4").touch()
        ((result, _),) = watcher.wait_for(1)
        time.sleep(0.8)
    assert len(watcher.results()) == 1
    assert result.verdict == "error" and result.error is not None
    assert result.error.kind == "empty"


def test_a_file_removed_before_settling_is_forgotten(tmp_path: Path) -> None:
    with watching(tmp_path, settle_s=1.0) as watcher:
        shutil.copyfile(PASSES, tmp_path / "gone.mp4")
        time.sleep(0.3)  # seen by several scans, but not settled
        (tmp_path / "gone.mp4").unlink()
        shutil.copyfile(PASSES, tmp_path / "kept.mp4")
        watcher.wait_for(1)
        time.sleep(1.2)
    assert names(watcher.results()) == ["kept.mp4"]


def test_stop_ends_the_watch_even_mid_interval(tmp_path: Path) -> None:
    # An interval far longer than the join timeout: only a wait that `stop` interrupts returns.
    watcher = Watcher(tmp_path, WatchOptions(interval_s=3600, settle_s=0.3))
    watcher.thread.start()
    time.sleep(0.2)
    assert watcher.thread.is_alive()
    watcher.stop.set()
    watcher.thread.join(timeout=DEADLINE_S)
    assert not watcher.thread.is_alive()
    assert not watcher.failed


def test_describe_prints_one_line_per_verdict(tmp_path: Path) -> None:
    out = io.StringIO()
    with watching(tmp_path, sort=True) as watcher:
        shutil.copyfile(PASSES, tmp_path / "good.mp4")
        shutil.copyfile(REJECTED, tmp_path / "ntsc.mp4")
        seen = watcher.wait_for(2)
    for result, moved_to in sorted(seen, key=lambda s: s[0].source):
        out.write(describe(tmp_path, result, moved_to, sort=True) + "\n")
    assert out.getvalue().splitlines() == [
        "PASS    good.mp4  -> passed/good.mp4",
        "REJECT  ntsc.mp4  -> rejected/ntsc.mp4  (fps.not_allowed)",
    ]


def test_main_loop_prints_each_verdict_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # A real process and a real SIGINT: Ctrl-C must end the loop with 0, not a traceback.
    shutil.copyfile(PASSES, tmp_path / "clip.mp4")
    program = (
        "import sys\n"
        "from preflight.pipeline import CheckOptions\n"
        "from preflight.policy import load_policy\n"
        "from preflight.watch import WatchOptions, main_loop\n"
        "options = WatchOptions(interval_s=0.05, settle_s=0.3, sort=True)\n"
        "code = main_loop(sys.argv[1], policy=load_policy(), check_options=CheckOptions(),\n"
        "                 options=options, out=sys.stdout)\n"
        "print('returned', code)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the file is judged
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert first == "PASS    clip.mp4  -> passed/clip.mp4\n"
    assert rest == "returned 0\n", errors
    assert "Traceback" not in errors
    assert process.returncode == 0


def test_the_watch_command_sorts_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    from .conftest import preflight_script

    folder = tmp_path / "exports"
    folder.mkdir()
    proc = subprocess.Popen(
        [
            preflight_script(),
            "watch",
            "--sort",
            "--interval",
            "0.05",
            "--settle",
            "0.3",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        shutil.copy(MEDIA / "fps_29.97.mp4", folder / "take1.mp4")
        deadline = time.monotonic() + 60
        while not (folder / "rejected" / "take1.mp4").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err  # Ctrl-C, as the exit-code table says
    assert (folder / "rejected" / "take1.mp4.preflight.json").exists()
    assert "REJECT" in out and "take1.mp4" in out


def test_an_unexpected_exception_is_kind_internal_as_in_a_batch(tmp_path: Path) -> None:
    from preflight.batch import run_batch

    # An unknown backend makes check_one raise (a UsageError, not a ProbeError): the stand-in
    # for any bug inside it. The watch and a batch must give that bug the same label.
    broken = CheckOptions(backend="no-such-backend")
    shutil.copy(PASSES, tmp_path / "clip.mp4")
    stop = threading.Event()
    seen: Seen = []

    def on_result(result: Result, moved_to: Path | None) -> None:
        seen.append((result, moved_to))
        stop.set()

    options = WatchOptions(interval_s=0.05, settle_s=0.1)
    thread = threading.Thread(
        target=watch,
        args=(tmp_path,),
        kwargs={
            "policy": load_policy(),
            "check_options": broken,
            "options": options,
            "on_result": on_result,
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive() and len(seen) == 1
    watched = seen[0][0]
    (batched,) = run_batch([str(tmp_path / "clip.mp4")], load_policy(), broken, workers=1)
    assert watched.error is not None and batched.error is not None
    assert watched.error.kind == batched.error.kind == "internal"
    assert "no-such-backend" in watched.error.message
