"""bench/fix.py: `preflight fix` against a naive "always re-encode" ffmpeg command, per kind.

For each kind, in the same run: the wall time of the real `preflight fix` command and of one naive
ffmpeg command (fps, scale and trim filters, libx264 CRF 18, default preset), and the SSIM of
each output against the source at the source's rate. Prints a table.

    .venv/bin/python bench/fix.py [--seconds 8] [--preset veryfast] [--runs 1]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from preflight.fixing.graph import Picture
from preflight.fixing.measure import Alignment, quality

# kind -> (size, rate, seconds factor, container, what the naive command must reach)
KINDS: dict[str, tuple[str, str, float, str]] = {
    "ntsc 29.97 -> 30": ("1920x1080", "30000/1001", 1.0, "mp4"),
    "pal 25 -> 24": ("1920x1080", "25", 0.6, "mp4"),
    "mkv remux": ("1920x1080", "30", 1.0, "mkv"),
    "long 12 s cut": ("1920x1080", "30", 1.5, "mp4"),
    "640x360 scale": ("640x360", "30", 1.0, "mp4"),
    "15 fps convert": ("1280x720", "15", 1.0, "mp4"),
}


def make(kind: str, folder: Path, seconds: float) -> Path:
    size, rate, factor, container = KINDS[kind]
    out = folder / f"{kind.split()[0]}.{container}"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc2=s={size}:r={rate}:d={seconds * factor:g}"),
            *("-f", "lavfi", "-i", f"sine=f=440:d={seconds * factor:g}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "aac", "-shortest"),
            str(out),
        ],
        check=True,
        timeout=600,
    )
    return out


def naive(source: Path, out: Path, kind: str, seconds: float) -> list[str]:
    size, rate, factor, _ = KINDS[kind]
    target = min(round(float(Fraction(rate))), 30) if float(Fraction(rate)) < 45 else 60
    target = 24 if rate == "25" else 30 if rate in ("30000/1001", "15") else target
    width, height = (int(x) for x in size.split("x"))
    if width < 720 or height < 720:
        width, height = width * 2, height * 2
    cut = min(seconds * factor, 10.5)
    return [
        *("ffmpeg", "-v", "error", "-y", "-i", str(source)),
        *("-vf", f"fps={target},scale={width}:{height}", "-t", f"{cut:g}"),
        *("-c:v", "libx264", "-crf", "18", "-c:a", "aac", "-movflags", "+faststart", str(out)),
    ]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, timeout=1800, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="base clip length (kinds take 0.6x or 1.5x)"
    )
    parser.add_argument("--preset", default=None, help="passed to preflight fix --preset")
    args = parser.parse_args()
    preflight = shutil.which("preflight") or str(Path(sys.executable).with_name("preflight"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in KINDS:
            source = make(kind, folder, args.seconds)
            fixed = folder / f"{source.stem}.fixed.mp4"
            cmd = [preflight, "fix", "--quiet", "-o", str(fixed), str(source)]
            cmd += ["--preset", args.preset] if args.preset else []
            fix_s = timed(cmd)
            plain = folder / f"{source.stem}.naive.mp4"
            naive_s = timed(naive(source, plain, kind, args.seconds))
            size, rate, _, _ = KINDS[kind]
            r = Fraction(rate)
            out_size = (1280, 720) if size == "640x360" else tuple(int(x) for x in size.split("x"))
            speed = {"ntsc": Fraction(1001, 1000), "pal": Fraction(24, 25)}.get(
                source.stem, Fraction(1)
            )
            frame = tuple(int(x) for x in size.split("x"))
            picture = Picture(frame, out_size, out_size)  # type: ignore[arg-type]
            fix_ssim = quality(
                str(fixed),
                str(source),
                Alignment(r, picture, speed),
                frames=round(args.seconds * float(r)),
                timeout_s=600,
            ).ssim
            naive_ssim = quality(
                str(plain),
                str(source),
                Alignment(r, picture),
                frames=round(args.seconds * float(r)),
                timeout_s=600,
            ).ssim
            rows.append((kind, fix_s, naive_s, fix_ssim, naive_ssim))
    print(
        f"{'kind':<18} {'fix s':>7} {'naive s':>8} {'speed-up':>8} {'fix SSIM':>9} "
        f"{'naive SSIM':>10}"
    )
    for kind, fix_s, naive_s, fix_ssim, naive_ssim in rows:
        print(
            f"{kind:<18} {fix_s:7.2f} {naive_s:8.2f} {naive_s / fix_s:7.1f}x "
            f"{fix_ssim:9.4f} {naive_ssim:10.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
