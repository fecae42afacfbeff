"""Benchmark: what a remote probe costs in bytes, requests and time, against ffprobe and MediaInfo.

Serves large generated files from a loopback server that logs every request (optionally adding
per-request latency) and prints, for each file, what each prober transferred. Usage:
    python bench/remote.py [--latency-ms 50] [--seconds 3] [--keep DIR]
    python bench/remote.py --batch [-n 300] [--latency-ms 50] [--sample 30]

--batch serves N small real MP4s (copies of a faststart, a moov-at-end and a fragmented seed) and
times, in one run, a sequential `ffprobe -show_format -show_streams` loop over them against the
real console script `preflight check --json --no-cache --quiet URL...` at its default settings.
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=None, help="0, or 50 with --batch")
    parser.add_argument("--batch", action="store_true", help="N URLs: ffprobe loop vs one check")
    parser.add_argument("-n", type=int, default=300, help="URLs in --batch (default 300)")
    parser.add_argument(
        "--sample", type=int, default=0, help="time the ffprobe loop on this many URLs and scale"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each test file")
    parser.add_argument("--keep", type=Path, help="make and keep the files here (reused)")
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        print("ffmpeg is needed to make the test files", file=sys.stderr)
        return 2
    if args.batch:
        latency = 50.0 if args.latency_ms is None else args.latency_ms
        return run_batch_bench(args.n, latency, args.sample, args.keep)
    args.latency_ms = args.latency_ms or 0.0
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


BATCH_SEEDS = {  # small but real: about 0.5 MB each, so a moov-at-end index is past the first read
    "faststart": ["-movflags", "+faststart"],
    "moov_at_end": [],
    "fragmented": ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-g", "30"],
}


def make_batch(folder: Path, count: int) -> list[str]:
    """`count` files named NNNN-shape.mp4, hard links (or copies) of three ffmpeg-made seeds."""
    seeds = {}
    for shape, flags in BATCH_SEEDS.items():
        seed = folder / f"seed-{shape}.mp4"
        if not seed.exists():
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                 "testsrc2=s=640x360:r=30:d=2", "-c:v", "libx264", "-preset", "ultrafast",
                 "-b:v", "2M", *flags, str(seed)],
                check=True, timeout=120,
            )  # fmt: skip
        seeds[shape] = seed
    names = []
    shapes = list(BATCH_SEEDS)
    for i in range(count):
        shape = shapes[i % len(shapes)]
        name = f"{i:04d}-{shape}.mp4"
        target = folder / name
        if not target.exists():
            shutil.copyfile(seeds[shape], target)
        names.append(name)
    return names


def run_batch_bench(count: int, latency_ms: float, sample: int, keep: Path | None) -> int:
    folder = keep or Path(tempfile.mkdtemp(prefix="preflight-bench-batch-"))
    folder.mkdir(parents=True, exist_ok=True)
    names = make_batch(folder, count)
    preflight_cli = Path(sys.executable).with_name("preflight")
    ffprobe_bin = shutil.which("ffprobe") or "ffprobe"
    faults = Faults(latency_s=latency_ms / 1000)
    with MediaServer(folder, faults=faults) as server:
        urls = [server.url(name) for name in names]
        # ffprobe, sequentially: one process per URL, as an ingestion script would call it.
        looped = urls[: sample or len(urls)]
        server.reset_log()
        started = time.perf_counter()
        for url in looped:
            subprocess.run(
                [ffprobe_bin, "-v", "error", "-show_format", "-show_streams", "-of", "json", url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False,
            )  # fmt: skip
        seconds = (time.perf_counter() - started) * len(urls) / len(looped)
        scaled = f" (timed {len(looped)}, scaled)" if len(looped) < len(urls) else ""
        stats = [(len(server.requests), server.bytes_sent, server.connections, len(looped))]
        # preflight, one process, default settings (workers, pool), no cache.
        server.reset_log()
        started = time.perf_counter()
        done = subprocess.run(
            [str(preflight_cli), "check", "--json", "--no-cache", "--quiet",
             "--allow-private-urls", *urls],
            capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        ours = time.perf_counter() - started
        stats.append((len(server.requests), server.bytes_sent, server.connections, len(urls)))
        per_shape = _requests_per_shape(server)
    verdicts = _verdicts(done.stdout)
    print(f"{count} URLs on one loopback server, {latency_ms:g} ms added per request")
    print(f"preflight: {preflight_cli}   verdicts: {verdicts}\n")
    header = (
        f"{'run':34} {'seconds':>8} {'URLs/s':>8} {'requests':>9} {'req/URL':>8} "
        f"{'bytes/URL':>10} {'conns':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, secs, (reqs, sent, conns, n) in zip(
        ["ffprobe loop" + scaled, "preflight check --json"], [seconds, ours], stats, strict=True
    ):
        print(
            f"{name:34} {secs:8.2f} {count / secs:8.1f} {reqs:9} {reqs / n:8.2f} "
            f"{sent // n:10,} {conns:6}"
        )
    print(f"\nratio (ffprobe loop / preflight): {seconds / ours:.1f}x")
    print("preflight requests per URL by shape: " + ", ".join(
        f"{shape} {value:.2f}" for shape, value in per_shape.items()
    ))  # fmt: skip
    if keep is None:
        shutil.rmtree(folder)
    return 0 if done.returncode in (0, 1) else 1


def _requests_per_shape(server: MediaServer) -> dict[str, float]:
    counts: dict[str, list[int]] = {shape: [0, 0] for shape in BATCH_SEEDS}
    seen: dict[str, set[str]] = {shape: set() for shape in BATCH_SEEDS}
    for request in server.requests:
        path = request.path.split("?")[0]
        for shape in BATCH_SEEDS:
            if path.endswith(f"-{shape}.mp4"):
                counts[shape][0] += 1
                seen[shape].add(path)
    return {shape: counts[shape][0] / max(1, len(seen[shape])) for shape in BATCH_SEEDS}


def _verdicts(stdout: bytes) -> str:
    import json

    try:
        results = json.loads(stdout)["results"]
    except (ValueError, KeyError, TypeError):
        return "unreadable output"
    tally: dict[str, int] = {}
    for result in results:
        tally[result["verdict"]] = tally.get(result["verdict"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))


if __name__ == "__main__":
    sys.exit(main())
