"""The ffmpeg children of fix: which binary (the pinned one), and running one to completion.

fix and its measurements run one FFmpeg, the same on every machine: the static build in the
imageio-ffmpeg wheel (pinned in pyproject). PREFLIGHT_FFMPEG overrides it; the PATH's ffmpeg is
the last resort where the wheel has no binary for this platform.

The child runs in its own process group, which this module kills on timeout, on cancel, on Ctrl-C
and on any exception, as probing/ffprobe.py does for ffprobe: no ffmpeg outlives a call here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import threading
import time

_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_POLL_S = 0.1  # how often a running child is checked for cancel and deadline


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
    """A generous deadline scaled to the clip: a 4K re-encode on a busy 2-core box included."""
    return 120.0 + 30.0 * max(duration_s or 0.0, 1.0)


def run(
    argv: list[str], timeout_s: float, cancel: threading.Event | None = None
) -> tuple[bytes, bytes]:
    """Run one child to completion and return (stdout, stderr); no child survives this call."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C on the terminal reaches us, not the child: we kill it
    )
    deadline = time.monotonic() + timeout_s
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
                    raise FfmpegFailed(
                        f"{os.path.basename(argv[0])} took longer than {timeout_s:g} s"
                    ) from None
    except BaseException:
        _kill(proc)
        raise
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise FfmpegFailed(f"{os.path.basename(argv[0])} was killed ({name})")
    if proc.returncode != 0:
        reason = _reason(err) or f"exit status {proc.returncode}"
        raise FfmpegFailed(f"{os.path.basename(argv[0])} failed: {reason}")
    return out, err


def _reason(err: bytes) -> str:
    """The first and the last error line, without the `[mov,mp4 @ 0x55d…]` prefixes."""
    lines = []
    for raw in err.decode("utf-8", "replace").splitlines():
        line = _PREFIX.sub("", raw).strip()
        if line and line not in lines:
            lines.append(line)
    return " … ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
