"""Benchmark: probe a folder serially with each preflight backend and with a plain ffprobe loop.

Prints files/second and the ratio to the ffprobe loop, all measured in the same run (MediaInfo in
its bounded worker, and in-process as it ran before for comparison), plus which MediaInfo
parse_speed gives the same facts as a full parse, fastest. Usage:
    python bench/probe.py [FOLDER] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from preflight import Policy, ProbeError, check_one, load_policy
from preflight.probing import boxes, ffprobe, mediainfo

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".m4a", ".3gp"}


def best_of(rounds: int, files: list[Path], work: Callable[[Path], object]) -> float:
    """Best wall time over `rounds` passes of `work` over every file, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for path in files:
            work(path)
        best = min(best, time.perf_counter() - started)
    return best


def ffprobe_loop(path: Path) -> None:
    # The obvious alternative: one ffprobe process per file asking for format and streams.
    subprocess.run(
        [
            ffprobe.find_ffprobe(),
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=False,
    )


def _read_mediainfo(path: Path) -> None:
    mediainfo.read(str(path))


def _read_mediainfo_in_process(path: Path) -> None:
    # Unbounded, as preflight did before the worker pool: only for the comparison.
    from pymediainfo import MediaInfo

    MediaInfo.parse(str(path), parse_speed=mediainfo.PARSE_SPEED, output=mediainfo.TEMPLATE)


def _read_boxes(path: Path) -> None:
    with path.open("rb") as f:
        if boxes.looks_like_isobmff(f.read(16)):
            with contextlib.suppress(ProbeError):
                boxes.read_layout(f, path.stat().st_size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", default="fixtures/media")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = sorted(
        p
        for p in Path(args.folder).iterdir()
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and p.stat().st_size > 0
    )
    if not files:
        print(f"no video files in {args.folder}", file=sys.stderr)
        return 2
    policy = load_policy()
    check_one(files[0], policy, backend="mediainfo")  # start a worker once, outside the timing
    _read_mediainfo_in_process(files[0])

    rows = [
        ("ffprobe subprocess loop", best_of(args.rounds, files, ffprobe_loop)),
        (
            "preflight check, auto (default)",
            best_of(args.rounds, files, lambda p: check_one(p, policy, backend="auto")),
        ),
        (
            "preflight check, mediainfo backend",
            best_of(args.rounds, files, lambda p: check_one(p, policy, backend="mediainfo")),
        ),
        (
            "preflight check, ffprobe backend",
            best_of(args.rounds, files, lambda p: check_one(p, policy, backend="ffprobe")),
        ),
        # What the box reader costs: MediaInfo's reading alone, as before the box reader existed.
        ("MediaInfo read alone, bounded worker", best_of(args.rounds, files, _read_mediainfo)),
        (
            "MediaInfo read alone, in-process",
            best_of(args.rounds, files, _read_mediainfo_in_process),
        ),
        ("box reader alone", best_of(args.rounds, files, _read_boxes)),
    ]
    baseline = rows[0][1]
    print(f"{len(files)} files from {args.folder}, best of {args.rounds} rounds, serial\n")
    print(f"{'method':40} {'files/s':>10} {'ms/file':>9} {'vs ffprobe loop':>16}")
    for name, seconds in rows:
        print(
            f"{name:40} {len(files) / seconds:10.1f} {seconds / len(files) * 1000:9.2f} "
            f"{baseline / seconds:15.1f}x"
        )

    print("\nMediaInfo parse_speed: time per file, and how many files get the same verdict")
    print("and facts as with a full parse (1.0), and the same raw MediaInfo fields")
    default = mediainfo.PARSE_SPEED
    full = {p: _outcome(p, policy, 1.0) for p in files}
    full_raw = {p: asdict(mediainfo.read(str(p), parse_speed=1.0)) for p in files}
    print(f"{'parse_speed':>11} {'ms/file':>9} {'same facts':>11} {'same raw':>9}")
    for speed in (0.0, 0.1, 0.25, 0.5, 1.0):
        mediainfo.PARSE_SPEED = speed
        seconds = best_of(args.rounds, files, lambda p: check_one(p, policy, backend="mediainfo"))
        same = sum(_outcome(p, policy, speed) == full[p] for p in files)
        raw = sum(asdict(mediainfo.read(str(p), parse_speed=speed)) == full_raw[p] for p in files)
        mark = "  <- preflight's default" if speed == default else ""
        print(
            f"{speed:11.2f} {seconds / len(files) * 1000:9.2f} {same:>6}/{len(files)} "
            f"{raw:>5}/{len(files)}{mark}"
        )
    mediainfo.PARSE_SPEED = default
    return 0


def _outcome(path: Path, policy: Policy, speed: float) -> object:
    mediainfo.PARSE_SPEED = speed
    result = check_one(path, policy, backend="mediainfo")
    return result.verdict, result.facts, [v.rule for v in result.violations + result.warnings]


if __name__ == "__main__":
    sys.exit(main())
