"""Benchmark: what a remote probe costs in bytes, requests and time, against ffprobe and MediaInfo.

Serves large generated files from a loopback server that logs every request (optionally adding
per-request latency) and prints, for each file, what each prober transferred. Usage:
    python bench/remote.py [--latency-ms 50] [--seconds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from preflight import check_one, load_policy
from preflight.pipeline import CheckOptions
from preflight.probing import boxes, ffprobe
from preflight.testing.media_server import Faults, MediaServer

SHAPES = {
    "faststart": ["-movflags", "+faststart"],
    "moov_at_end": [],
    "fragmented": ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-g", "15"],
}


def make_files(folder: Path, seconds: float) -> list[Path]:
    """Incompressible 1280x720 video (about 43 MB a second), so mdat dwarfs moov."""
    made = []
    for shape, flags in SHAPES.items():
        out = folder / f"{shape}.mp4"
        if not out.exists():
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"nullsrc=s=1280x720:r=30:d={seconds},geq=random(1)*255:128:128",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-qp",
                    "0",
                    *flags,
                    str(out),
                ],
                check=True,
            )
        made.append(out)
    return made


def moov_size(path: Path) -> int:
    with path.open("rb") as f:
        return sum(b.size for b in boxes.walk_top(f, path.stat().st_size) if b.type == "moov")


def measure(server: MediaServer, work: Callable[[], object]) -> tuple[int, int, float, str]:
    """Bytes the server sent, requests it answered, seconds taken, and a failure note."""
    server.reset_log()
    started = time.perf_counter()
    note = ""
    try:
        work()
    except Exception as exc:  # a prober that cannot read URLs is a result here, not a crash
        note = f"{type(exc).__name__}: {str(exc)[:60]}"
    elapsed = time.perf_counter() - started
    return server.bytes_sent, len(server.requests), elapsed, note


def run_ffprobe(url: str) -> None:
    ffprobe.run_json(url, ["-show_format", "-show_streams"], 120)


def run_mediainfo_url(url: str) -> None:
    from pymediainfo import MediaInfo

    text = MediaInfo.parse(url, output="General;%Format%")
    if not str(text).strip():
        raise RuntimeError("MediaInfo read nothing from the URL (no HTTP support in this build)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each test file")
    parser.add_argument("--keep", type=Path, help="make and keep the files here (reused)")
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        print("ffmpeg is needed to make the test files", file=sys.stderr)
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="preflight-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = make_files(folder, args.seconds)
    policy = load_policy()
    options = CheckOptions(allow_private_urls=True)
    faults = Faults(latency_s=args.latency_ms / 1000)
    print(f"loopback server, {args.latency_ms:g} ms added per request\n")
    header = (
        f"{'file':12} {'size':>11} {'moov':>8} | {'prober':22} {'bytes':>11} "
        f"{'requests':>8} {'seconds':>8}  note"
    )
    print(header)
    print("-" * len(header))
    with MediaServer(folder, faults=faults) as server:
        for path in files:
            url = server.url(path.name)
            rows = [
                ("preflight (mediainfo)", lambda u=url: _ours(u, policy, options)),
                (
                    "preflight (ffprobe)",
                    lambda u=url: _ours(
                        u, policy, CheckOptions(backend="ffprobe", allow_private_urls=True)
                    ),
                ),
                ("ffprobe URL", lambda u=url: run_ffprobe(u)),
                ("pymediainfo URL string", lambda u=url: run_mediainfo_url(u)),
            ]
            size, moov = path.stat().st_size, moov_size(path)
            for i, (name, work) in enumerate(rows):
                sent, requests, seconds, note = measure(server, work)
                lead = f"{path.stem[:12]:12} {size:11,} {moov:8,}" if i == 0 else " " * 33
                print(f"{lead} | {name:22} {sent:11,} {requests:8} {seconds:8.3f}  {note}")
            print()
    if args.keep is None:
        shutil.rmtree(folder)
    return 0


def _ours(url: str, policy: object, options: CheckOptions) -> None:
    result = check_one(url, policy, options=options)  # type: ignore[arg-type]
    if result.verdict == "error":
        raise RuntimeError(result.error.message if result.error else "error")


if __name__ == "__main__":
    sys.exit(main())
