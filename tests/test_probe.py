"""The probe on files made here by ffmpeg: truncation at any cut, the ffprobe child's lifetime.

Real ffmpeg, real files in a temporary folder; nothing is mocked.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from preflight import ProbeError, check_one, probe
from preflight.probing import ffprobe

from .conftest import make_video


def _make(ffmpeg: str, out: Path, *args: str) -> Path:
    return make_video(ffmpeg, out, "color=c=blue:s=1280x720:r=30:d=3", *args)


@pytest.mark.parametrize("movflags", ["+faststart", ""])
def test_every_cut_of_a_file_is_an_error_never_a_pass(
    ffmpeg: str, tmp_path: Path, movflags: str
) -> None:
    whole = _make(ffmpeg, tmp_path / "whole.mp4", *(["-movflags", movflags] if movflags else []))
    data = whole.read_bytes()
    assert check_one(whole).verdict == "pass"
    kinds = set()
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        cut = tmp_path / f"cut{fraction}.mp4"
        cut.write_bytes(data[: int(len(data) * fraction)])
        result = check_one(cut)
        assert result.verdict == "error", (fraction, result.facts)
        assert result.error is not None
        kinds.add(result.error.kind)
        if result.error.kind == "truncated":
            assert "the file is truncated or still being written" in result.error.message
    assert kinds <= {"truncated", "no_moov"}


def test_facts_of_a_generated_file(ffmpeg: str, tmp_path: Path) -> None:
    clip = _make(ffmpeg, tmp_path / "clip.mov", "-f", "mov")
    facts = probe(clip).facts
    assert (facts.container, facts.width, facts.height) == ("mov", 1280, 720)
    assert facts.fps_exact == "30/1" and facts.duration == pytest.approx(3.0)
    assert facts.frame_count == 90 and facts.size_bytes == clip.stat().st_size


def test_ffprobe_child_does_not_outlive_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    slow = tmp_path / "slow-ffprobe"
    slow.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setenv("PREFLIGHT_FFPROBE", str(slow))
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        ffprobe.read("whatever.mp4", timeout_s=0.5)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
