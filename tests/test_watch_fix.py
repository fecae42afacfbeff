"""`watch --sort --fix` through the real console script: each fix is announced when it starts,
printed and recorded when it ends, and a file dropped while another is being re-encoded is judged
at once.

"At once" is shown by the order of output lines, not by timing: while the fix's ffmpeg is
stopped (SIGSTOP), the fix cannot end, so a verdict printed meanwhile proves judging does not
wait for fixes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .conftest import FIXTURES, preflight_script, run_cli

MEDIA = FIXTURES / "media"
DEADLINE_S = 60.0  # generous: a re-encode on a busy 2-core machine


class Lines:
    """The watch's stdout, line by line, as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, start: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if line.startswith(start):
                        return line
            time.sleep(0.02)
        raise AssertionError(f"no line starting {start!r} in {self.lines}")

    def index(self, start: str) -> int:
        with self._lock:
            return next(i for i, line in enumerate(self.lines) if line.startswith(start))


def ffmpeg_children(pid: int) -> list[int]:
    """The ffmpeg/ffprobe processes descended from `pid` (the fix's, in their own sessions)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        names[int(entry)] = os.path.basename(argv0.decode(errors="replace"))

    def descends(child: int) -> bool:
        while child in parents and child > 1:
            child = parents[child]
            if child == pid:
                return True
        return False

    # The pinned binary is named ffmpeg-linux-x86_64-v9.0.2 (imageio-ffmpeg): match by prefix.
    return [p for p in parents if names[p].startswith(("ffmpeg", "ffprobe")) and descends(p)]


def stop_the_fix(pid: int) -> list[int]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        children = ffmpeg_children(pid)
        if children:
            for child in children:
                os.kill(child, signal.SIGSTOP)
            return children
        time.sleep(0.005)
    raise AssertionError("the fix never started an ffmpeg")


def test_fixes_are_printed_recorded_and_never_hold_up_new_files(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    proc = start_watch(folder)
    stopped: list[int] = []
    try:
        out = Lines(proc)
        # 1280×718 needs a re-encode (scale to 720 high), the slowest kind of fix.
        (tmp_path / "short.mp4").write_bytes((MEDIA / "res_1280x718.mp4").read_bytes())
        os.replace(tmp_path / "short.mp4", folder / "short.mp4")  # arrives whole
        out.wait_for("FIXING  rejected/short.mp4")
        stopped = stop_the_fix(proc.pid)
        os.replace(_copy(MEDIA / "fps_30.mp4", tmp_path / "next.mp4"), folder / "next.mp4")
        out.wait_for("PASS    next.mp4")  # judged while the re-encode cannot progress
        for child in stopped:
            os.kill(child, signal.SIGCONT)
        stopped = []
        fixed = out.wait_for("FIXED   rejected/short.mp4")
    finally:
        for child in stopped:
            os.kill(child, signal.SIGCONT)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE_S)
    # Ctrl-C ends a watch with 130, as the exit-code table says (issue 22 item 7).
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert out.lines[0] == "REJECT  short.mp4  -> rejected/short.mp4  (resolution.height)"
    assert out.lines[1] == "FIXING  rejected/short.mp4  (resolution.height)"
    assert out.index("FIXING  rejected/short.mp4") < out.index("PASS    next.mp4")
    assert out.index("PASS    next.mp4") < out.index("FIXED   rejected/short.mp4")
    # Where the copy went, how it was made and how close it is to the source.
    assert fixed.startswith("FIXED   rejected/short.mp4  -> passed/short.fixed.mp4  (re-encoded")
    assert "SSIM 0." in fixed or "SSIM 1." in fixed
    assert run_cli("check", str(folder / "passed" / "short.fixed.mp4")).returncode == 0
    log = [json.loads(line) for line in (folder / ".preflight" / "verdicts.jsonl").open()]
    assert [line["event"] for line in log] == ["verdict", "verdict", "fix"]
    fix = log[2]["fix"]
    assert log[2]["source"] == str(folder / "rejected" / "short.mp4")
    assert fix["status"] == "fixed" and fix["lossless"] is False
    assert fix["output"] == str(folder / "passed" / "short.fixed.mp4")
    assert isinstance(fix["ssim"], float) and fix["ssim"] >= 0.97


def test_an_unfixable_file_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    proc = start_watch(folder)
    try:
        out = Lines(proc)
        os.replace(_copy(MEDIA / "audio_only.mp4", tmp_path / "a.mp4"), folder / "sound.mp4")
        line = out.wait_for("UNFIXABLE rejected/sound.mp4")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, err  # Ctrl-C
    assert out.lines[:2] == [
        "REJECT  sound.mp4  -> rejected/sound.mp4  (stream.no_video)",
        "FIXING  rejected/sound.mp4  (stream.no_video)",
    ]
    assert "no video track" in line and "->" not in line  # no copy was written
    assert not (folder / "passed").exists() or not any((folder / "passed").iterdir())
    log = [json.loads(raw) for raw in (folder / ".preflight" / "verdicts.jsonl").open()]
    assert log[-1]["event"] == "fix" and log[-1]["fix"]["status"] == "unfixable"


def start_watch(folder: Path) -> subprocess.Popen[str]:
    options = ["--sort", "--fix", "--interval", "0.05", "--settle", "0.3"]
    return subprocess.Popen(
        [preflight_script(), "watch", *options, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def test_a_fix_line_reads_vmaf_and_ssim_when_the_fix_result_has_them(tmp_path: Path) -> None:
    # Issue 20 adds `vmaf` to FixResult.to_dict() on its own schedule: a number or an object
    # with a mean is shown, anything else (or nothing) is left out; the line never fails on it.
    from preflight.watch import WatchEvent, describe_event

    source, output = tmp_path / "rejected" / "a.mp4", tmp_path / "passed" / "a.fixed.mp4"
    base = {"status": "fixed", "lossless": False, "ssim": 0.98765}
    lines = [
        describe_event(tmp_path, WatchEvent("fixed", source, fix={**base, **extra}, output=output))
        for extra in ({"vmaf": 96.123}, {"vmaf": {"mean": 95.0}}, {"vmaf": "n/a"}, {})
    ]
    head = "FIXED   rejected/a.mp4  -> passed/a.fixed.mp4  (re-encoded, "
    assert lines == [
        head + "VMAF 96.12, SSIM 0.9877)",
        head + "VMAF 95.00, SSIM 0.9877)",
        head + "SSIM 0.9877)",
        head + "SSIM 0.9877)",
    ]
    lossless = {"status": "fixed", "lossless": True, "ssim": None}
    assert describe_event(tmp_path, WatchEvent("fixed", source, fix=lossless, output=output)) == (
        "FIXED   rejected/a.mp4  -> passed/a.fixed.mp4  (lossless)"
    )
