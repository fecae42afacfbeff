"""The ffprobe backend: one ffprobe child per call, whose lifetime and bounds this module owns.

ffmpeg-python's probe(timeout=...) leaves the child running when the timeout fires, so we start
ffprobe in its own process group and kill the group on timeout or interruption; it runs under the
same address-space bound and deadline as the MediaInfo worker (limits.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from fractions import Fraction
from typing import Any

from ..errors import ProbeError
from ..facts import BackendReading, as_float
from .limits import ProbeLimits
from .names import codec_from_fourcc, container_from_ffprobe

__all__ = ["find_ffprobe", "read", "reading_from_json", "run_json"]
# What ffprobe prints when an allocation fails under the bound (AVERROR(ENOMEM)), or when the bound
# is too small to even map its libraries (it needs ~350 MiB of address space to start).
_OUT_OF_MEMORY = ("Cannot allocate memory", "failed to map segment")


def find_ffprobe() -> str:
    found = os.environ.get("PREFLIGHT_FFPROBE") or shutil.which("ffprobe")
    if not found:
        raise ProbeError(
            "ffprobe is not installed: install ffmpeg (Debian: apt-get install ffmpeg) or use "
            "--probe mediainfo",
            kind="backend_missing",
        )
    return found


def run_json(
    target: str, extra_args: list[str], timeout_s: float, *, memory_mib: int | None = None
) -> dict[str, Any]:
    """Run ffprobe on a local path and return its JSON; no child survives this call.

    ffprobe gets `file:` and the absolute path: a name is a URL to it (`concat:a|b`, `file:x`
    open other files) and a leading `-` an option (`-report` writes a log), never data.
    """
    url = "file:" + os.path.abspath(target)
    cmd = _bounded([find_ffprobe(), "-v", "error", *extra_args, "-of", "json", url], memory_mib)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _limit_late(proc.pid, memory_mib)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ProbeError(f"ffprobe took longer than {timeout_s:g} s", kind="timeout") from None
    except BaseException:
        _kill(proc)
        raise
    if proc.returncode != 0:
        first = err.decode("utf-8", "replace").strip().splitlines()
        reason = first[-1] if first else f"exit status {proc.returncode}"
        reason = reason.replace(url, target)  # the name as the caller gave it
        if proc.returncode < 0 or any(sign in reason for sign in _OUT_OF_MEMORY):
            # Killed by a signal (SIGSEGV/SIGABRT after a failed allocation) or out of memory.
            bound = f" of its {memory_mib} MiB bound" if memory_mib else ""
            raise ProbeError(
                f"ffprobe ran out of memory{bound} or crashed reading it ({reason})",
                kind="resource_limit",
            )
        raise ProbeError(f"ffprobe could not read it: {reason}", kind="not_media")
    try:
        parsed: dict[str, Any] = json.loads(out)
    except ValueError as exc:
        raise ProbeError("ffprobe printed something that is not JSON", kind="unreadable") from exc
    return parsed


def _bounded(cmd: list[str], memory_mib: int | None) -> list[str]:
    """`cmd` run under an address-space bound and without core dumps.

    prlimit(1) sets the limits between fork and exec in its own process, which preexec_fn
    would do in ours: preexec_fn is documented unsafe in a threaded parent (batches are threads).
    Without prlimit (not util-linux) the bound is set on the child right after it starts.
    """
    if memory_mib is None:
        return cmd
    wrapper = shutil.which("prlimit")
    if wrapper:
        return [wrapper, f"--as={memory_mib * 1024 * 1024}", "--core=0", "--", *cmd]
    return cmd


def _limit_late(pid: int, memory_mib: int | None) -> None:
    if memory_mib is None or shutil.which("prlimit"):
        return
    import resource

    with contextlib.suppress(OSError, ValueError):
        resource.prlimit(pid, resource.RLIMIT_AS, (memory_mib * 1024 * 1024,) * 2)
        resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def read(
    target: str, *, timeout_s: float | None = None, limits: ProbeLimits | None = None
) -> BackendReading:
    """ffprobe's reading of a local file; `timeout_s` overrides the deadline of `limits`."""
    limits = limits or ProbeLimits()
    deadline = limits.timeout_s if timeout_s is None else timeout_s
    data = run_json(
        target, ["-show_format", "-show_streams"], deadline, memory_mib=limits.memory_mib
    )
    return reading_from_json(data)


def reading_from_json(data: dict[str, Any]) -> BackendReading:
    fmt = data.get("format") or {}
    reading = BackendReading(backend="ffprobe")
    reading.container = container_from_ffprobe(str(fmt.get("format_name", "")))
    reading.container_duration = as_float(fmt.get("duration"))
    streams = data.get("streams") or []
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    reading.video_tracks = len(videos)
    reading.has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not videos:
        return reading
    video = videos[0]
    reading.video_codec = str(
        video.get("codec_name") or codec_from_fourcc(str(video.get("codec_tag_string", "")))
    )
    reading.width = video.get("width")
    reading.height = video.get("height")
    # r_frame_rate is not the average rate (it says 90000/1 on phone files): use avg_frame_rate.
    reading.fps = _rate(video.get("avg_frame_rate"))
    reading.duration = as_float(video.get("duration"))
    frames = video.get("nb_frames")
    reading.frame_count = int(frames) if frames and str(frames).isdigit() else None
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            # ffprobe states counter-clockwise degrees; we report clockwise, as MediaInfo does.
            reading.rotation = round(-float(side["rotation"])) % 360
    return reading


def _rate(value: Any) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate else None
