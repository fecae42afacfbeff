"""bench/fix.py: `preflight fix` against re-encoding the whole clip, per kind of problem.

For each kind, in the same run and with the same (pinned) FFmpeg: the wall time of the real
`preflight fix` command; for a cut, of the same command with the copy and smart cuts turned off
(the whole clip re-encoded and measured, as every cut was before them); of one ffmpeg command
re-encoding the whole clip at fix's preset (libx264 CRF 18, no quality pass), and of a naive one
(fps, scale and trim filters, CRF 18, default preset); the SSIM of fix's and the naive output
against the source at the source's rate, and how many of fix's video packets are the source's
own (framemd5 of -c copy). Runs are alternated and the median kept. Prints a table.

    .venv/bin/python bench/fix.py [--seconds 8] [--preset veryfast] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from preflight.fixing.graph import DEFAULT_PRESET
from preflight.fixing.measure import Alignment, packet_hashes, quality
from preflight.fixing.picture import Picture
from preflight.fixing.spawn import find_ffmpeg

# kind -> (size, rate, seconds factor, container, x264 params)
KINDS: dict[str, tuple[str, str, float, str, str]] = {
    "ntsc 29.97 -> 30": ("1920x1080", "30000/1001", 1.0, "mp4", ""),
    "pal 25 -> 24": ("1920x1080", "25", 0.6, "mp4", ""),
    "mkv remux": ("1920x1080", "30", 1.0, "mkv", ""),
    "cut 6 s -> 5.5": ("1920x1080", "30", 0.75, "mp4", ""),
    "cut 12 s -> 10.5": ("1920x1080", "30", 1.5, "mp4", ""),
    "smart cut 6 s": ("1920x1080", "30", 0.75, "mp4", "bframes=16:b-adapt=0:b-pyramid=none"),
    "640x360 scale": ("640x360", "30", 1.0, "mp4", ""),
    "15 fps convert": ("1280x720", "15", 1.0, "mp4", ""),
}


def make(ffmpeg: str, kind: str, folder: Path, seconds: float) -> Path:
    size, rate, factor, container, x264 = KINDS[kind]
    out = folder / f"{kind.replace(' ', '_').replace('>', '')}.{container}"
    params = ["-x264-params", x264] if x264 else []
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc2=s={size}:r={rate}:d={seconds * factor:g}"),
            *("-f", "lavfi", "-i", f"sine=f=440:d={seconds * factor:g}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", *params),
            *("-c:a", "aac", "-shortest", str(out)),
        ],
        check=True,
        timeout=600,
    )
    return out


def target(kind: str, seconds: float) -> tuple[int, int, int, float]:
    """(fps, width, height, duration) the fix must reach."""
    size, rate, factor, _, _ = KINDS[kind]
    fps = {"25": 24, "30000/1001": 30, "15": 30}.get(rate, round(float(Fraction(rate))))
    width, height = (int(x) for x in size.split("x"))
    if width < 720 or height < 720:
        width, height = width * 2, height * 2
    length = seconds * factor
    cut = 5.5 if 5.5 < length < 7 else min(length, 10.5)
    return fps, width, height, cut


def whole(
    ffmpeg: str, source: Path, out: Path, kind: str, seconds: float, preset: str
) -> list[str]:
    """Re-encode the whole clip with fps, scale and trim filters at CRF 18 and `preset`."""
    fps, width, height, cut = target(kind, seconds)
    return [
        *(ffmpeg, "-v", "error", "-y", "-i", str(source)),
        *("-vf", f"fps={fps},scale={width}:{height}", "-t", f"{cut:g}"),
        *("-c:v", "libx264", "-crf", "18", *(["-preset", preset] if preset else [])),
        *("-c:a", "aac", "-movflags", "+faststart", str(out)),
    ]


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, check=True, timeout=1800, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout


# `preflight fix` with the copy and smart cuts turned off: the cut re-encodes the whole clip, as
# every cut did before them (the re-check rejected the -t copy cut). Bench-only: fix has no
# switch for it.
FORCED_REENCODE = """
import sys
from preflight.cli import main
from preflight.fixing import packets
packets.plan_cut = lambda plan, found, floor, **_: packets._exact(plan, "forced by the bench")
sys.exit(main(sys.argv[1:]))
"""


def how(report: str, packets: str) -> str:
    """What fix did to the video: copy (every packet the source's), smart cut, or re-encode."""
    steps = json.loads(report)["results"][0]["steps"]
    if any("smart cut" in step["detail"] for step in steps):
        return "smart cut"
    same, total = packets.split("/")
    return "copy" if same == total else "re-encode"


def kept(output: Path, source: Path) -> str:
    """`k/n`: how many of the output's n video packets are the source's, in order."""
    ours, theirs = packet_hashes(str(output)), packet_hashes(str(source))
    same = 0
    for one, other in zip(ours, theirs, strict=False):
        if one != other:
            break
        same += 1
    return f"{same}/{len(ours)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="base clip length (kinds take 0.6x to 1.5x)"
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="preflight fix --preset")
    parser.add_argument("--runs", type=int, default=3, help="alternated runs, median kept")
    parser.add_argument("--only", default="", help="only the kinds whose name contains this")
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    preflight = str(Path(sys.executable).with_name("preflight"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in (k for k in KINDS if args.only in k):
            source = make(ffmpeg, kind, folder, args.seconds)
            fixed = folder / f"{source.stem}.fixed.mp4"
            plain = folder / f"{source.stem}.whole.mp4"
            naive = folder / f"{source.stem}.naive.mp4"
            fix_cmd = [preflight, "fix", "--json", "--force", "-o", str(fixed), str(source)]
            fix_cmd += ["--preset", args.preset]
            times: dict[str, list[float]] = {"fix": [], "whole": [], "naive": []}
            cutting = target(kind, args.seconds)[3] < args.seconds * KINDS[kind][2]
            if cutting:
                times["forced"] = []
                forced = folder / f"{source.stem}.forced.mp4"
                forced_cmd = [sys.executable, "-c", FORCED_REENCODE, *fix_cmd[1:]]
                forced_cmd[forced_cmd.index(str(fixed))] = str(forced)
            report = ""
            for _ in range(args.runs):
                spent, report = timed(fix_cmd)
                times["fix"].append(spent)
                if cutting:
                    times["forced"].append(timed(forced_cmd)[0])
                whole_cmd = whole(ffmpeg, source, plain, kind, args.seconds, args.preset)
                times["whole"].append(timed(whole_cmd)[0])
                times["naive"].append(
                    timed(whole(ffmpeg, source, naive, kind, args.seconds, ""))[0]
                )
            rate = KINDS[kind][1]
            _, width, height, _ = target(kind, args.seconds)
            speed = {"25": Fraction(24, 25), "30000/1001": Fraction(1001, 1000)}.get(
                rate, Fraction(1)
            )
            size = KINDS[kind][0]
            frame = (int(size.split("x")[0]), int(size.split("x")[1]))
            picture = Picture(frame, (width, height), (width, height))
            count = round(args.seconds * KINDS[kind][2] * float(Fraction(rate)))
            scores = [
                quality(str(out), str(source), one, frames=count, timeout_s=600).ssim
                for out, one in (
                    (fixed, Alignment(Fraction(rate), picture, speed)),
                    (naive, Alignment(Fraction(rate), picture)),
                )
            ]
            medians = {name: statistics.median(values) for name, values in times.items()}
            packets = kept(fixed, source)
            rows.append((kind, how(report, packets), packets, medians, scores))
    print(
        f"{'kind':<18} {'video':>9} {'kept':>9} {'fix s':>6} {'fix re-enc s':>12} {'x':>6} "
        f"{'ffmpeg s':>8} {'x':>6} {'naive s':>8} {'x':>6} {'fix SSIM':>8} {'naive':>7}"
    )
    for kind, mode, packets, m, (fix_ssim, naive_ssim) in rows:
        slower = (
            f"{m['forced']:12.2f} {m['forced'] / m['fix']:5.1f}x"
            if "forced" in m
            else f"{'-':>12} {'-':>6}"
        )
        print(
            f"{kind:<18} {mode:>9} {packets:>9} {m['fix']:6.2f} {slower} "
            f"{m['whole']:8.2f} {m['whole'] / m['fix']:5.1f}x "
            f"{m['naive']:8.2f} {m['naive'] / m['fix']:5.1f}x {fix_ssim:8.4f} {naive_ssim:7.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
