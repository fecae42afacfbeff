"""Benchmark: one file, one process, as ingestion scripts call a tool, against ffprobe on the file.

Makes a real MP4 and MOV with ffmpeg, then alternates runs of `ffprobe -show_format
-show_streams`, `preflight check --json --no-cache`, `preflight check --json` (cache on, warm) and
`python -c pass` (the floor), and prints each median wall time and its ratio to ffprobe's, plus
the median time of `import preflight` and `import preflight.cli` in a fresh interpreter. Runs the
`preflight` console script beside sys.executable, so another venv's python measures that venv's
install (e.g. the unchanged code, for "before"). Imports nothing from preflight itself. Usage:
    python bench/single.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

TIMEOUT_S = 60


def make_videos(folder: Path) -> list[Path]:
    """A 5 s 1280x720 30 fps H.264 + AAC clip (passes the default policy), as MP4 and as MOV."""
    made = []
    for suffix in ("mp4", "mov"):
        path = folder / f"clip.{suffix}"
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-y",
                "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                "-f", "lavfi", "-i", "sine=frequency=440",
                "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-movflags", "+faststart", str(path),
            ],
            check=True,
            timeout=TIMEOUT_S,
        )  # fmt: skip
        made.append(path)
    return made


def wall_ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, capture_output=True, env=env, cwd=cwd, timeout=TIMEOUT_S, check=False
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode not in (0, 1):  # 1: a reject is a normal answer
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def import_ms(module: str, env: dict[str, str], cwd: Path) -> float:
    code = (
        "import time; t = time.perf_counter(); import "
        + module
        + "; print((time.perf_counter() - t) * 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT_S,
        check=True,
        text=True,
    )
    return float(out.stdout)


def describe_install() -> str:
    try:
        dist = metadata.distribution("preflight")
    except metadata.PackageNotFoundError:
        return "preflight not installed in this venv"
    direct = dist.read_text("direct_url.json")
    editable = bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))
    kind = "editable (pip install -e: its import finder adds ~10 ms)" if editable else "regular"
    return f"preflight {dist.version}, {kind} install, python {sys.version.split()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each (default 21)")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "preflight"
    ffprobe = shutil.which("ffprobe")
    if not script.exists() or ffprobe is None:
        raise SystemExit(f"need {script} and ffprobe on PATH")
    print(f"{script}: {describe_install()}")
    with tempfile.TemporaryDirectory(prefix="bench-single-") as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_")}
        # The cache for the warm runs lives where a user's does by default (found through the XDG
        # data folder, as on any Linux desktop or server), only inside this temporary folder.
        env["XDG_DATA_HOME"] = str(folder / "data")
        videos = make_videos(folder)
        rows: dict[str, list[float]] = {}
        for video in videos:
            commands = {
                "ffprobe -show_format -show_streams": [
                    ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json",
                    str(video),
                ],
                "preflight check --json --no-cache": [
                    str(script), "check", "--json", "--no-cache", str(video),
                ],
                "preflight check --json (warm cache)": [str(script), "check", "--json", str(video)],
                "python -c pass (the floor)": [sys.executable, "-c", "pass"],
            }  # fmt: skip
            wall_ms(commands["preflight check --json (warm cache)"], env, folder)  # warm it
            for _ in range(args.runs):  # alternated, so load on the machine hits each alike
                for label, argv in commands.items():
                    rows.setdefault(f"{video.suffix[1:]:<3}  {label}", []).append(
                        wall_ms(argv, env, folder)
                    )
        imports: dict[str, list[float]] = {"import preflight": [], "import preflight.cli": []}
        for _ in range(args.runs):
            for label in imports:
                imports[label].append(import_ms(label.split()[1], env, folder))
    print(f"median of {args.runs} alternated runs each, wall time of the whole process:")
    print(f"{'':44} {'ms':>7} {'x ffprobe':>10}")
    for video_kind in ("mp4", "mov"):
        base = statistics.median(rows[f"{video_kind}  ffprobe -show_format -show_streams"])
        for label, times in rows.items():
            if label.startswith(video_kind):
                median = statistics.median(times)
                print(f"{label:44} {median:7.1f} {median / base:9.2f}x")
    for label, times in imports.items():
        print(f"{label + ' (in a fresh interpreter)':44} {statistics.median(times):7.1f}")


if __name__ == "__main__":
    main()
