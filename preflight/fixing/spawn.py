"""The ffmpeg children of fix: which binary (the pinned one), its bounds, and running it.

fix and its measurements run one FFmpeg, the same on every machine: the static build in the
imageio-ffmpeg wheel (pinned in pyproject). PREFLIGHT_FFMPEG overrides it; the PATH's ffmpeg is
the last resort where the wheel has no binary for this platform.

Every child is bounded like the probe workers: an address-space limit, a CPU-time limit and a
deadline scaled to the clip, in our process group (a kill of the group reaches it) and with the
parent-death signal armed (launcher.py), so no ffmpeg outlives preflight, even one SIGKILLed.
This module kills the child on timeout, on cancel, on Ctrl-C and on any exception.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_POLL_S = 0.1  # how often a running child is checked for cancel and deadline
_LAUNCHER = str(Path(__file__).with_name("launcher.py"))
_CANNOT_START = 126  # launcher.py's exit when the bounds or the program failed (it says which)
# What ffmpeg (or x264/x265 inside it) prints when an allocation fails under the bound.
_OUT_OF_MEMORY = ("Cannot allocate memory", "malloc of size", "failed to map segment")
# H.264 and HEVC at their highest level (6.2) carry at most 35,651,584 luma samples a frame
# (8192x4352): a larger frame is a decompression bomb, not footage. A 752 KB 16000x16000 H.264
# file held 3 GB in ffmpeg 5.1. Given to every decoder as -max_pixels, so a frame size the
# container hides from the check is refused by ffmpeg too.
MAX_FRAME_PIXELS = 35_651_584
# A 4K HEVC re-encode into x265 at 2160 px needed 2 GiB of address space on 2 cores (1.5 GiB
# failed); every extra core adds threads, stacks and their malloc arenas.
BASE_MEMORY_MIB = 3072
MEMORY_MIB_PER_EXTRA_CORE = 256


class FfmpegFailed(Exception):
    """ffmpeg failed, was killed, or ran out of time; the message is one line."""


class FixCancelled(Exception):
    """The caller's cancel event was set while ffmpeg ran (the child is already gone)."""


def find_ffmpeg() -> str:
    """PREFLIGHT_FFMPEG, else the pinned FFmpeg of imageio-ffmpeg, else the PATH's ffmpeg."""
    found = os.environ.get("PREFLIGHT_FFMPEG") or _pinned() or shutil.which("ffmpeg")
    if not found:
        raise FfmpegFailed("no ffmpeg: reinstall preflight (it brings imageio-ffmpeg's FFmpeg)")
    return found


@functools.lru_cache(maxsize=1)
def _pinned() -> str | None:
    """The wheel's binary, found by name: imageio_ffmpeg.get_ffmpeg_exe() would honour another
    variable (IMAGEIO_FFMPEG_EXE), fall back to any ffmpeg on PATH and run it unbounded to see."""
    try:
        from importlib.resources import files

        folder = files("imageio_ffmpeg.binaries")
        for entry in folder.iterdir():
            if entry.name.startswith("ffmpeg-") and not entry.name.endswith((".md", ".py")):
                path = os.fspath(entry)  # type: ignore[call-overload]
                if os.access(path, os.X_OK):
                    return str(path)
    except (ImportError, OSError, TypeError):
        return None
    return None


def timeout_for(duration_s: float | None) -> float:
    """A generous deadline scaled to the clip: a 4K re-encode on a busy 2-core box included.

    PREFLIGHT_FIX_TIMEOUT_S, when set, replaces it (tests use a short one).
    """
    configured = _env_float("PREFLIGHT_FIX_TIMEOUT_S")
    if configured is not None:
        return configured
    return 120.0 + 30.0 * max(duration_s or 0.0, 1.0)


def memory_mib() -> int:
    """The address-space bound of one ffmpeg child (PREFLIGHT_FIX_MEMORY_MIB overrides)."""
    configured = _env_float("PREFLIGHT_FIX_MEMORY_MIB")
    if configured is not None:
        return int(configured)
    return BASE_MEMORY_MIB + MEMORY_MIB_PER_EXTRA_CORE * max(0, _cores() - 2)


def parallel_limit() -> int:
    """How many ffmpeg children may run at once: one per core, and no more than the machine's
    memory holds at each one's bound (what `fix --workers N` is held to)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        physical = 0
    by_memory = physical // (memory_mib() * 1024 * 1024) if physical > 0 else _cores()
    return max(1, min(_cores(), by_memory))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number > 0 else None


def run(
    argv: list[str], timeout_s: float, cancel: threading.Event | None = None
) -> tuple[bytes, bytes]:
    """Run one bounded child to completion and return (stdout, stderr); no child survives this
    call, nor preflight."""
    bound = memory_mib()
    # The deadline's worth of every core: it ends a child whose parent can no longer keep the
    # deadline (stopped, say). ffmpeg catches the soft limit's SIGXCPU and exits (status 255);
    # the hard limit, 5 s on, is SIGKILL.
    cpu_s = int(timeout_s * _cores()) + 1
    bounds = [str(os.getpid()), str(bound << 20), str(cpu_s)]
    proc = subprocess.Popen(
        [sys.executable, "-S", "-I", _LAUNCHER, *bounds, "--", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        close_fds=True,
        # One malloc arena per thread reserves 64 MiB of address space each, which would count
        # against the bound without ever being used.
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    deadline = time.monotonic() + timeout_s
    program = _program(argv[0])
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    _kill(proc)
                    raise FixCancelled("cancelled") from None
                if time.monotonic() > deadline:
                    _kill(proc)
                    raise FfmpegFailed(f"{program} took longer than {timeout_s:g} s") from None
    except BaseException:
        _kill(proc)
        raise
    if proc.returncode == 0:
        return out, err
    reason = _reason(err)
    # Only RLIMIT_CPU sends SIGXCPU (seen here when the program does not catch it).
    if proc.returncode == -signal.SIGXCPU:
        raise FfmpegFailed(f"{program} used its {cpu_s} s of CPU time and was stopped")
    if any(sign in reason for sign in _OUT_OF_MEMORY) or (
        proc.returncode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS)
    ):
        raise FfmpegFailed(
            f"{program} ran out of its {bound} MiB memory bound, or crashed"
            + (f" ({reason})" if reason else "")
        )
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise FfmpegFailed(f"{program} was killed ({name})")
    if proc.returncode == _CANNOT_START and reason.startswith("cannot "):
        raise FfmpegFailed(f"{program} could not be started: {reason}")
    raise FfmpegFailed(f"{program} failed: {reason or f'exit status {proc.returncode}'}")


def _program(path: str) -> str:
    """`ffmpeg` for the pinned binary (ffmpeg-linux-x86_64-v9.0.2), else the file's name."""
    name = os.path.basename(path)
    return "ffmpeg" if name.startswith("ffmpeg") else name


def _reason(err: bytes) -> str:
    """The first and the last error line, without the `[mov,mp4 @ 0x55d…]` prefixes."""
    lines = []
    for raw in err.decode("utf-8", "replace").splitlines():
        line = _PREFIX.sub("", raw).strip()
        if line and line not in lines:
            lines.append(line)
    return " … ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # The child alone: it shares our process group, and ffmpeg starts no children of its own.
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.communicate()
