"""The progress bar on a real terminal: `check` and `fix` run in a tmux pane (a real pty, both
streams on one screen), and the final screen is read back with capture-pane.

Piped runs never draw the bar, so only a pty shows whether it runs into the results. Each run
waits for a GO file before starting, so that tmux's pipe-pane records every byte it writes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import FIXTURES, preflight_script, run_cli

MEDIA = FIXTURES / "media"
COLUMNS = 160
DEADLINE_S = 90.0  # generous: only a hung run takes this long


class Pane:
    def __init__(self, socket: Path, raw: Path) -> None:
        self.socket = socket
        self.raw = raw

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def screen(self) -> list[str]:
        """The whole pane, scrollback included, wrapped lines joined, trailing blanks dropped."""
        lines = [
            line.rstrip() for line in self.tmux("capture-pane", "-p", "-J", "-S", "-").split("\n")
        ]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait_for_exit(self) -> list[str]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            screen = self.screen()
            if any(line.startswith("exit ") for line in screen):
                return screen
            time.sleep(0.2)
        raise AssertionError("the command did not finish:\n" + "\n".join(self.screen()))


@contextmanager
def pane(tmp_path: Path, argv: list[str], **env: str) -> Iterator[Pane]:
    """`argv` in a detached 160-column tmux pane of its own server; `exit N` is printed after it."""
    socket = tmp_path / "tmux.sock"
    go = tmp_path / "GO"
    raw = tmp_path / "raw.log"
    script = (
        f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.05; done\n"
        f"{shlex.join(argv)}\n"
        'echo "exit $?"\n'
        "sleep 600\n"
    )
    settings = [f"{key}={value}" for key, value in {"LANG": "C.UTF-8", **env}.items()]
    started = Pane(socket, raw)
    options = [f"-e{setting}" for setting in settings]
    started.tmux(
        "-f", os.devnull, "new-session", "-d", "-x", str(COLUMNS), "-y", "50",
        *options, "sh", "-c", script,
    )  # fmt: skip
    try:
        started.tmux("set-option", "-g", "history-limit", "5000")
        started.tmux("pipe-pane", "-o", f"cat >> {shlex.quote(str(raw))}")
        go.touch()
        yield started
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, timeout=30)


def forty_files(folder: Path) -> Path:
    """About forty real clips, each kind of verdict among them."""
    folder.mkdir()
    for number, source in enumerate(sorted(MEDIA.glob("*.mp4"))[:40]):
        shutil.copyfile(source, folder / f"{number:02d}_{source.name}")
    return folder


def piped_lines(*argv: str) -> list[str]:
    done = run_cli(*argv)
    return done.stdout.splitlines()


def test_check_prints_every_result_line_whole_above_the_bar(tmp_path: Path) -> None:
    folder = forty_files(tmp_path / "exports")
    argv = ["check", "--no-cache", "--workers", "2", "--color", "never", str(folder)]
    expected = piped_lines(*argv)
    assert len(expected) > 40  # every file has a line, the rejects more
    with pane(tmp_path, [preflight_script(), *argv]) as shown:
        screen = shown.wait_for_exit()
        raw = shown.raw.read_bytes().decode("utf-8", "replace")
    # The final screen is exactly what a pipe gets: no bar fragment glued to a result, no result
    # cut, no bar left behind…
    assert screen == [*expected, "exit 3"], "\n".join(screen)
    # …though a bar was drawn (a real pty), counting verdicts.
    assert "/40 |" in raw and "reject" in raw and "ETA" in raw


def test_a_report_piped_into_another_program_on_the_terminal_gets_no_bar(tmp_path: Path) -> None:
    # `| cat` (as `| grep`, `| tee`, `| less`) prints our lines on the same terminal whenever it
    # reads them: no clearing of ours reaches that, so no bar may be drawn under it.
    folder = forty_files(tmp_path / "exports")
    argv = ["check", "--no-cache", "--workers", "2", "--color", "never", str(folder)]
    expected = piped_lines(*argv)
    pipeline = f"{shlex.join([preflight_script(), *argv])} | cat"
    with pane(tmp_path, ["sh", "-c", pipeline]) as shown:
        screen = shown.wait_for_exit()
        raw = shown.raw.read_bytes().decode("utf-8", "replace")
    assert screen == [*expected, "exit 0"], "\n".join(screen)
    assert "/40 |" not in raw and "ETA" not in raw


def test_fix_counts_fixed_and_unfixable_and_never_runs_into_a_result(tmp_path: Path) -> None:
    sources = tmp_path / "in"
    sources.mkdir()
    for name in ("fps_29.97.mp4", "fps_25.mp4", "dur_6.0s.mp4", "audio_only.mp4", "fps_30.mp4"):
        shutil.copyfile(MEDIA / name, sources / name)
    argv = ["fix", "--out-dir", str(tmp_path / "out"), str(sources)]
    (tmp_path / "out").mkdir()
    expected = piped_lines(*argv, "--dry-run")  # what each source will be, without writing
    assert sum(line.startswith("PLAN") for line in expected) == 3
    with pane(tmp_path, [preflight_script(), *argv]) as shown:
        screen = shown.wait_for_exit()
        raw = shown.raw.read_bytes().decode("utf-8", "replace")
    heads = [line for line in screen if line and not line.startswith(" ")]
    assert [line.split()[0] for line in heads] == [
        "UNFIXABLE",
        "FIXED",
        "FIXED",
        "FIXED",
        "OK",
        "5",
        "exit",
    ], "\n".join(screen)
    assert heads[-2] == "5 sources: 3 fixed, 1 nothing to fix, 1 unfixable"
    assert screen[-1] == "exit 1"
    for line in screen:
        assert "ETA" not in line and "|" not in line, line
    assert "/5 |" in raw and "fixed" in raw and "unfixable" in raw
    assert "pass " not in raw and "reject " not in raw  # fix's bar does not count verdicts


def test_a_terminal_narrowed_under_the_bar_still_shows_every_result_whole(tmp_path: Path) -> None:
    # tmux rewraps a line when its window narrows, as most terminals do: a bar drawn 159 wide
    # becomes three rows at 70, of which tqdm alone would clear one and write the next result
    # into the rest of it.
    sources = tmp_path / "in"
    sources.mkdir()
    names = ("dur_10.6s.mp4", "dur_6.0s.mp4", "fps_23.976.mp4", "fps_25.mp4", "fps_29.97.mp4")
    for name in names:
        shutil.copyfile(MEDIA / name, sources / name)
    piped_out, out = tmp_path / "piped", tmp_path / "out"
    piped_out.mkdir()
    out.mkdir()
    expected = piped_lines("fix", "--out-dir", str(piped_out), str(sources))
    expected = [line.replace(str(piped_out), str(out)) for line in expected]
    argv = [preflight_script(), "fix", "--out-dir", str(out), str(sources)]
    with pane(tmp_path, argv) as shown:
        deadline = time.monotonic() + DEADLINE_S
        while not any(line.startswith("FIXED") for line in shown.screen()):
            assert time.monotonic() < deadline, shown.screen()
            time.sleep(0.02)
        shown.tmux("resize-window", "-x", "70")
        screen = shown.wait_for_exit()
    # What a narrowed terminal may keep is the old bar on a line of its own; every result line
    # is whole and on its own line.
    stale = [line for line in screen if line[:1].isdigit() and "/5 |" in line]
    assert [line for line in screen if line not in stale] == [*expected, "exit 0"], "\n".join(
        screen
    )
    assert len(stale) == 1  # the bar was drawn 159 wide when the window narrowed


def test_a_terminal_that_cannot_encode_blocks_gets_an_ascii_bar_and_no_color_holds(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "few"
    folder.mkdir()
    for name in ("fps_24.mp4", "fps_30.mp4", "fps_29.97.mp4"):
        shutil.copyfile(MEDIA / name, folder / name)
    argv = [preflight_script(), "check", "--no-cache", "--workers", "1", str(folder)]
    with pane(tmp_path, argv, PYTHONIOENCODING="ascii", NO_COLOR="1") as shown:
        screen = shown.wait_for_exit()
        raw = shown.raw.read_bytes()
    assert screen[-1] == "exit 1" and "Traceback" not in "\n".join(screen)
    assert [line.split()[0] for line in screen if not line.startswith(" ")] == [
        "PASS",
        "REJECT",
        "PASS",
        "3",
        "exit",
    ], "\n".join(screen)
    assert b"/3 |" in raw
    raw.decode("ascii")  # the bar fell back to ASCII; the report's ✗ is escaped, not raised on
    assert re.search(rb"\x1b\[[0-9;]*m", raw) is None  # NO_COLOR: no colour, bar or report
