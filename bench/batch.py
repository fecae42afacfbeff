"""Benchmark: `preflight check` over N small real videos against a sequential ffprobe loop.

Times, in one run: the ffprobe loop, `preflight check` cold (no cache) and warm (all cached), cold
with 1, 2 and 4 worker threads, cold with `--dask local:2` (two worker processes; its row
includes starting the LocalCluster, skipped without the dask extra), and `check --html` cold
(empty cache: every thumbnail decoded) and warm (the cache the cold row filled); each is the real
console script over the whole folder. Usage:
    python bench/batch.py [-n 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = [  # a few distinct encodes; each of the N files is a real copy of one of them
    ("color=c=blue:s=1280x720:r=30:d=3", []),
    ("testsrc2=s=1280x720:r=24:d=2", []),
    ("color=c=red:s=720x1280:r=60:d=5", ["-movflags", "+faststart"]),
    ("testsrc2=s=1920x1080:r=30000/1001:d=3", ["-f", "mov"]),
    ("color=c=green:s=640x360:r=25:d=8", []),
]


def make_files(folder: Path, count: int) -> list[Path]:
    seeds = []
    for i, (source, flags) in enumerate(VARIANTS):
        seed = folder / f"seed{i}.mp4"
        if not seed.exists():
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    source,
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-crf",
                    "40",
                    *flags,
                    str(seed),
                ],
                check=True,
            )
        seeds.append(seed)
    clips = folder / "clips"
    clips.mkdir(exist_ok=True)
    files = []
    for i in range(count):
        target = clips / f"clip{i:05d}.mp4"
        if not target.exists():
            shutil.copyfile(seeds[i % len(seeds)], target)
        files.append(target)
    return files


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - started


def ffprobe_loop(files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
            capture_output=True,
            check=False,
        )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="how many videos (default 1000)")
    parser.add_argument("--keep", type=Path, help="make and keep the files here (reused)")
    args = parser.parse_args()
    script = shutil.which("preflight") or str(Path(sys.executable).with_name("preflight"))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="preflight-batch-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = make_files(folder, args.n)
    clips = str(folder / "clips")
    ledger = folder / "bench-ledger.sqlite3"
    env = {**os.environ, "PREFLIGHT_LEDGER": str(ledger)}

    def fresh_cache() -> None:
        for leftover in folder.glob("bench-ledger.sqlite3*"):
            leftover.unlink()

    rows: list[tuple[str, float]] = [("ffprobe loop (sequential)", ffprobe_loop(files))]
    for workers in (1, 2, 4):
        rows.append(
            (
                f"preflight check cold, {workers} worker{'s' * (workers > 1)}",
                timed(
                    [
                        script,
                        "check",
                        "--quiet",
                        "--no-cache",
                        "--workers",
                        str(workers),
                        "--json",
                        clips,
                    ],
                    env,
                ),
            )
        )
    if importlib.util.find_spec("distributed") is not None:
        # One file: what starting and stopping the LocalCluster costs, paid once per run.
        startup = timed(
            [
                script,
                "check",
                "--quiet",
                "--no-cache",
                "--dask",
                "local:2",
                "--json",
                str(files[0]),
            ],
            env,
        )
        rows.append(
            (
                "preflight check cold, --dask local:2",
                timed(
                    [
                        script,
                        "check",
                        "--quiet",
                        "--no-cache",
                        "--dask",
                        "local:2",
                        "--json",
                        clips,
                    ],
                    env,
                ),
            )
        )
    fresh_cache()
    rows.append(
        (
            "preflight check cold (default, fills cache)",
            timed([script, "check", "--quiet", "--json", clips], env),
        )
    )
    rows.append(
        (
            "preflight check warm (every file cached)",
            timed([script, "check", "--quiet", "--json", clips], env),
        )
    )
    page = folder / "report.html"
    fresh_cache()
    html_command = [script, "check", "--quiet", "--json", "--html", str(page), clips]
    rows.append(("preflight check --html cold", timed(html_command, env)))
    cold_page_bytes = page.stat().st_size if page.exists() else 0
    rows.append(("preflight check --html warm", timed(html_command, env)))
    baseline = rows[0][1]
    print(f"{len(files)} files ({len(VARIANTS)} distinct encodes), {os.cpu_count()} cores\n")
    print(f"{'run':46} {'seconds':>8} {'files/s':>9} {'vs ffprobe':>11}")
    for name, seconds in rows:
        print(f"{name:46} {seconds:8.2f} {len(files) / seconds:9.0f} {baseline / seconds:10.1f}x")
    if importlib.util.find_spec("distributed") is not None:
        print(f"(--dask local:2 over one file, i.e. cluster start and stop: {startup:.2f} s)")
    print(
        f"(--html page: {cold_page_bytes / 1e6:.2f} MB, "
        f"{cold_page_bytes // len(files)} bytes a file)"
    )
    if args.keep is None:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
