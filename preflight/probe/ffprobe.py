"""The ffprobe backend: one ffprobe child per call, whose lifetime this module owns.

ffmpeg-python's probe(timeout=...) leaves the child running when the timeout fires, so we start
ffprobe in its own process group and kill the group on timeout or interruption.
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
from ..facts import BackendReading
from .names import codec_from_fourcc, container_from_ffprobe

DEFAULT_TIMEOUT_S = 30.0


def find_ffprobe() -> str:
    found = os.environ.get("PREFLIGHT_FFPROBE") or shutil.which("ffprobe")
    if not found:
        raise ProbeError(
            "ffprobe is not installed: install ffmpeg (Debian: apt-get install ffmpeg) or use "
            "--probe mediainfo",
            kind="backend_missing",
        )
    return found


def run_json(target: str, extra_args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ffprobe on a path or URL and return its JSON; no child survives this call."""
    cmd = [find_ffprobe(), "-v", "error", *extra_args, "-of", "json", target]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
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
        raise ProbeError(f"ffprobe could not read it: {reason}", kind="not_media")
    try:
        parsed: dict[str, Any] = json.loads(out)
    except ValueError as exc:
        raise ProbeError("ffprobe printed something that is not JSON", kind="unreadable") from exc
    return parsed


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def read(target: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> BackendReading:
    data = run_json(target, ["-show_format", "-show_streams"], timeout_s)
    return reading_from_json(data)


def reading_from_json(data: dict[str, Any]) -> BackendReading:
    fmt = data.get("format") or {}
    reading = BackendReading(backend="ffprobe")
    reading.container = container_from_ffprobe(str(fmt.get("format_name", "")))
    reading.container_duration = _float(fmt.get("duration"))
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
    reading.duration = _float(video.get("duration"))
    frames = video.get("nb_frames")
    reading.frame_count = int(frames) if frames and str(frames).isdigit() else None
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            # ffprobe states counter-clockwise degrees; we report clockwise, as MediaInfo does.
            reading.rotation = round(-float(side["rotation"])) % 360
    sar = _rate(str(video.get("sample_aspect_ratio", "")).replace(":", "/"))
    reading.pixel_aspect = sar if sar else None
    return reading


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _rate(value: Any) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate else None
