"""The README walk (issue 22, item 7): every `console` block of README.md, run in order in one
real bash, in a fresh folder with an empty HOME, against the loopback stand-ins the README itself
starts (the media server, the sandbox, SeaweedFS), comparing what the README shows with what
each command prints.

Driven by the README: adding a block adds a step. What a block shows after a `$ command` line is
compared line by line once ids, times, ports, hashes and the temporary folder are masked; a `…`
in the README stands for any text in its line, and a line that is only `…` for any lines. A
command the README shows no output for must still succeed (or fail as its `echo $?` says).

A few examples cannot run on one machine as written (another user's folder, hosts named
`db.internal` or `scheduler`, a public CDN, `pip install` from the network): NOT_RUN names each
with the reason, and a test fails when one of them is no longer in the README, so the list
cannot go stale.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import FIXTURES, ROOT, preflight_script

README = ROOT / "README.md"
MEDIA = FIXTURES / "media"

# Commands (their text up to the first `  #`) that the walk does not run, and why.
NOT_RUN = {
    "cd /srv/exports/today && preflight check clip.mp4": "needs a folder owned by another user "
    "(tests/test_policy_trust.py runs this case as nobody)",
    "printf 'w/fmt_mp4_h264.mp4\\n# comments and blank lines are skipped\\n"
    "https://cdn.example.com/a.mp4\\n' | preflight check --from - --jsonl": "names a public CDN: "
    "the suite sends nothing off loopback",
    "pip install 'preflight[postgres]'": "installs from the network",
    "export PREFLIGHT_LEDGER='postgresql://preflight@db.internal/preflight'": "a host "
    "named db.internal (tests/test_ledger_pg.py runs a real cluster)",
    "preflight init --video-url https://cdn.example.com/take1.mp4": "a public CDN and the "
    "db.internal ledger",
    "preflight sessions --json": "the db.internal ledger",
    "pip install 'preflight[dask]'": "installs from the network",
    "dask scheduler &": "a cluster across hosts (tests/test_dask.py runs one on loopback)",
    "dask worker tcp://scheduler:8786 &": "a host named scheduler",
    "preflight check --dask tcp://scheduler:8786 -r /mnt/archive --junit qa.xml": "a host named "
    "scheduler",
    "preflight check --dask local:4 -r /mnt/archive": "an archive mount the machine has not",
}
# SeaweedFS's ports besides S3's (`weed mini` defaults: 9333, 8080, 8888, … and their gRPC ports).
WEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc",
)  # fmt: skip
# Commands that run until Ctrl-C: interrupted once the lines the README shows have appeared.
UNTIL_CTRL_C = ("preflight watch ",)
STEP_TIMEOUT_S = 120.0
DONE = "__README_WALK_DONE__"


@dataclass
class Step:
    line: int  # in README.md, for the failure message
    command: str
    shown: list[str] = field(default_factory=list)  # the lines the README shows after it


def console_steps(text: str) -> list[Step]:
    """Every `$ command` of every console block, in order, with the output shown under it."""
    steps: list[Step] = []
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            steps.append(Step(number, line[2:]))
        elif steps:
            steps[-1].shown.append(line)
    return steps


def _bare(command: str) -> str:
    """The command without its trailing `# comment` (a README aside, not shell for the test)."""
    return re.sub(r"\s+#\s.*$", "", command).strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Masks:
    """What differs from run to run, replaced by a name on both sides before comparing."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = str(tmp)

    def __call__(self, line: str) -> str:
        line = line.replace(self.tmp, "<TMP>")
        rules = [
            (r"127\.0\.0\.1:\d+", "127.0.0.1:<PORT>"),
            (r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00| UTC)?", "<TIME>"),
            (r"\b\d{8}T\d{6}Z\b", "<TIME>"),
            (r"(?<=%2F)\d{8}(?=%2F)", "<DATE>"),  # the day in a presigned URL's credential
            (r"\b[0-9a-f]{64}\b", "<SHA>"),
            (r"\b[0-9a-f]{32}\b", "<HEX>"),
            (r"\b[0-9a-f]{12}\b", "<HEX12>"),
            (r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=<SIG>"),
            (r"\b\d{15,20}\b", "<ID>"),
            (r"PREFLIGHT_SANDBOX_PID=\d+", "PREFLIGHT_SANDBOX_PID=<PID>"),
            (r'"elapsed_ms": [\d.]+', '"elapsed_ms": <MS>'),
            (r"^(\s*wrote .*; )\d+(\.\d+)? s$", r"\1<SECONDS> s"),  # fix's time taken
        ]
        for pattern, name in rules:
            line = re.sub(pattern, name, line)
        return line.rstrip()


def matches(shown: list[str], printed: list[str], mask: Masks) -> bool:
    """Whether the printed lines are what the README shows, masks and `…` applied."""
    pattern = ""
    for line in shown:
        if line.strip() == "…":
            pattern += r"(?:.*\n)*?"
            continue
        parts = [re.escape(mask(part)) for part in line.split("…")]
        pattern += ".*?".join(parts) + r"[ \t]*\n"
    text = "".join(mask(line) + "\n" for line in printed)
    return re.fullmatch(pattern, text) is not None


class Shell:
    """One bash for the whole walk: cd, export and eval carry over from step to step."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._buffer = b""
        self.send("exec 2>&1")

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def run(self, command: str, *, interrupt_after: int | None = None) -> tuple[int, list[str]]:
        """Run one command (stdin /dev/null unless it pipes its own); its lines and exit code."""
        # The exit code is kept and given back to the shell, so that the README's next
        # `echo $?` sees the example's, not our marker's.
        report = f'__s=$?; echo "{DONE} $__s"; (exit $__s)'
        if interrupt_after is not None:
            # Its own process group, so that the SIGINT reaches it as Ctrl-C would, not bash.
            self.send(f"set -m; {{ {command} ; }} </dev/null & set +m; WALK_PID=$!")
            lines = self._lines_until(lambda got: len(got) >= interrupt_after, STEP_TIMEOUT_S)
            self.send(f'kill -INT -- "-$WALK_PID"; wait "$WALK_PID"; {report}')
        else:
            end = "" if command.endswith("&") else " ;"
            self.send(f"{{ {command}{end} }} </dev/null; {report}")
            lines = []
        rest = self._lines_until(lambda got: bool(got) and got[-1].startswith(DONE), STEP_TIMEOUT_S)
        lines += rest
        code = int(lines.pop().split()[1])
        return code, lines

    def more(self, wanted: int, timeout_s: float) -> list[str]:
        """Lines a background command prints after its prompt returned (a server's address)."""
        return self._lines_until(lambda got: len(got) >= wanted, timeout_s)

    def _lines_until(self, enough: object, timeout_s: float) -> list[str]:
        assert self.process.stdout is not None
        got: list[str] = []
        deadline = time.monotonic() + timeout_s
        fd = self.process.stdout.fileno()
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                got.append(line.decode(errors="backslashreplace"))
                if enough(got):  # type: ignore[operator]
                    return got
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return got
            chunk = os.read(fd, 65536)
            if not chunk:
                return got
            self._buffer += chunk

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.kill()
        self.process.wait(timeout=30)


def _workspace(tmp: Path) -> None:
    """The files the README's examples name, as a newcomer would have them in a fresh clone."""
    (tmp / "fixtures").symlink_to(FIXTURES)
    (tmp / "w" / "day2").mkdir(parents=True)
    shutil.copy(MEDIA / "dur_7.0s.mp4", tmp / "w" / "day2")
    for name in ("fmt_mp4_h264.mp4", "fps_29.97.mp4"):
        shutil.copy(MEDIA / name, tmp / "w")
    (tmp / "exports").mkdir()
    shutil.copy(MEDIA / "fmt_mp4_h264.mp4", tmp / "exports" / "take1.mp4")
    shutil.copy(MEDIA / "fps_29.97.mp4", tmp / "exports" / "take2.mp4")
    for name in ("fps_29.97.mp4", "dur_6.0s.mp4", "fps_25.mp4", "res_1280x718.mp4"):
        shutil.copy(MEDIA / name, tmp)
    shutil.copy(MEDIA / "audio_only.mp4", tmp)
    shutil.copy(MEDIA / "fmt_mp4_h264.mp4", tmp / "clip.mp4")
    shutil.copy(MEDIA / "fps_29.97.mp4", tmp / "take2.mp4")
    shutil.copy(MEDIA / "dur_5.5s.mp4", tmp / "take3.mp4")


def test_not_run_names_only_commands_the_readme_has() -> None:
    commands = {_bare(step.command) for step in console_steps(README.read_text())}
    assert sorted(set(NOT_RUN) - commands) == []


def test_every_console_example_runs_as_the_readme_shows(tmp_path: Path) -> None:
    steps = console_steps(README.read_text())
    assert len(steps) > 20  # the parser did find the README's examples
    home = tmp_path / "home"
    home.mkdir()
    walk = tmp_path / "clone"
    walk.mkdir()
    _workspace(walk)
    venv_bin = str(Path(preflight_script()).parent)
    env = {
        "HOME": str(home),
        "PATH": f"{venv_bin}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PREFLIGHT_API_BASE": os.environ.get("PREFLIGHT_API_BASE", "http://127.0.0.1:9"),
    }
    # The README's fixed ports, moved to free ones (this machine runs other suites at once).
    ports = {port: str(_free_port()) for port in ("8800", "8900", "8333")}
    weed_ports = " ".join(
        f"-{name}={_free_port() if name != 's3.port' else ports['8333']}" for name in WEED_PORTS
    )
    mask = Masks(walk)
    shell = Shell(walk, env)
    failures: list[str] = []
    ids: dict[str, str] = {}  # a session id the README shows -> the one this walk opened
    try:
        for step in steps:
            bare = _bare(step.command)
            if bare in NOT_RUN:
                continue
            command = bare
            for readme_port, port in ports.items():
                command = command.replace(f":{readme_port}", f":{port}")
                command = command.replace(f"--port {readme_port}", f"--port {port}")
            for shown_id, real_id in ids.items():
                command = command.replace(shown_id, real_id)
            if command.startswith("weed mini "):
                command = command.replace(" > weed.log", f" {weed_ports} > weed.log")
            shown = step.shown
            interrupt = len(shown) if bare.startswith(UNTIL_CTRL_C) else None
            code, printed = shell.run(command, interrupt_after=interrupt)
            if bare.endswith("&") and len(printed) < len(shown):
                printed += shell.more(len(shown) - len(printed), 30)
            _learn_ids(step.shown, printed, ids)
            where = f"README.md:{step.line}: $ {step.command}"
            if interrupt is not None:  # a watch reports files as they settle, in any order
                shown, printed = sorted(shown), sorted(printed)
            if shown:
                if not matches(shown, printed, mask):
                    failures.append(
                        f"{where}\n  the README shows:\n    "
                        + "\n    ".join(shown)
                        + "\n  it printed:\n    "
                        + "\n    ".join(printed)
                    )
            elif code in (2, 126, 127) or any("Traceback" in line for line in printed):
                # Not run as written (a usage error, a command not found); a verdict's 1 or 3
                # is what the example is about.
                failures.append(f"{where}\n  exit {code}:\n    " + "\n    ".join(printed))
    finally:
        shell.close()
        _stop_leftovers(walk)
    assert not failures, "\n\n".join(failures)


def _learn_ids(shown: list[str], printed: list[str], ids: dict[str, str]) -> None:
    """Session ids and process ids the README shows, paired with those this walk got, so that a
    later `sessions show ID` or `kill PID` names the real one."""
    pattern = r"\b\d{15,20}\b|(?<=PREFLIGHT_SANDBOX_PID=)\d+"
    for said, got in zip(shown, printed, strict=False):
        for a, b in zip(re.findall(pattern, said), re.findall(pattern, got), strict=False):
            if a != b:
                ids.setdefault(a, b)


def _stop_leftovers(walk: Path) -> None:
    """What the walk started in the background and the README leaves running (the sandbox in its
    own session, `weed mini` in its own group): every process working in the walk's folder."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(walk) or cwd.startswith(f"{walk}/"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGTERM)


@pytest.mark.parametrize(
    ("shown", "printed", "same"),
    [
        (["SESSION 778789943425774109 (opened; expires 2026-11-26T07:06:37Z)"],
         ["SESSION 123456789012345678 (opened; expires 2027-01-01T00:00:00Z)"], True),
        (["        …"], ["a", "b", "c"], True),
        (["read 5579 of 5579 bytes in 1 request"], ["read 5579 of 5579 bytes in 2 requests"],
         False),
        (["http://127.0.0.1:8800/x?…"], ["http://127.0.0.1:41234/x?a=b"], True),
    ],
)  # fmt: skip
def test_the_comparison_masks_only_what_varies(
    shown: list[str], printed: list[str], same: bool, tmp_path: Path
) -> None:
    assert matches(shown, printed, Masks(tmp_path)) is same
