"""bench/fix_corpus.py: `preflight fix` over the real-world corpus (../shared/corpus), the table
the README's fix section quotes.

Every corpus file the manifest expects rejected for container, duration, resolution or fps only
is fixed by the real console script (--jsonl, into a temp folder); the table gives each one's
status, whether every step was lossless or the video was re-encoded, SSIM and VMAF against the
source, and the size written; the totals line counts them.

    .venv/bin/python bench/fix_corpus.py [--preset veryfast] [--workers 1] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from preflight.fixing.graph import DEFAULT_PRESET

FIXABLE = {"container", "duration", "resolution", "fps"}
HERE = Path(__file__).resolve().parent


def rejects(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "manifest.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        row
        for row in rows
        if row["expected"] == "reject" and set(row["families"].split(",")) <= FIXABLE
    ]


def kind(result: dict[str, object]) -> str:
    """lossless; video kept (every video packet kept, the audio re-timed or re-encoded); smart
    cut (only a frame group re-encoded); or re-encode."""
    steps = result["steps"]
    assert isinstance(steps, list)
    if result["lossless"]:
        return "lossless"
    if result["ssim"] is None:
        return "video kept"
    if any(s["action"] == "cut" and "smart" in s["detail"] for s in steps) and not any(
        s["action"] in {"scale", "pad", "convert_fps", "extend", "transcode_video"} for s in steps
    ):
        return "smart cut"
    return "re-encode"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="what fix uses by default")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus")
    args = parser.parse_args()
    preflight = shutil.which("preflight", path=str(Path(sys.executable).parent)) or "preflight"
    rows = rejects(args.corpus)
    files = [str(args.corpus / "media" / row["file"]) for row in rows]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        done = subprocess.run(
            [
                *(preflight, "fix", "--jsonl", "--workers", str(args.workers)),
                *("--preset", args.preset, "--out-dir", out, *files),
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.perf_counter() - started
    results = [json.loads(line) for line in done.stdout.splitlines()]
    by_name = {Path(str(r["source"])).name: r for r in results}
    print(f"{'file':<34} {'families':<26} {'status':<10} {'how':<10} {'SSIM':>7} {'VMAF':>6}")
    counts: dict[str, int] = {}
    vmafs = []
    for row in rows:
        got = by_name.get(row["file"], {"status": "missing", "reason": done.stderr.strip()})
        how = kind(got) if got["status"] == "fixed" else ""
        counts[how or str(got["status"])] = counts.get(how or str(got["status"]), 0) + 1
        ssim = f"{got['ssim']:.4f}" if got.get("ssim") is not None else "-"
        vmaf = f"{got['vmaf']:.1f}" if got.get("vmaf") is not None else "-"
        if got.get("vmaf") is not None:
            vmafs.append(float(str(got["vmaf"])))
        print(
            f"{row['file']:<34} {row['families']:<26} {got['status']!s:<10} {how:<10} "
            f"{ssim:>7} {vmaf:>6}"
        )
        if got["status"] != "fixed":
            print(f"    why: {got.get('reason')}")
    fixed = sum(1 for r in results if r["status"] == "fixed")
    print(
        f"\n{fixed} of {len(rows)} fixed ({counts.get('lossless', 0)} lossless, "
        f"{counts.get('video kept', 0)} with every video packet kept and the audio re-encoded, "
        f"{counts.get('smart cut', 0)} smart cut, {counts.get('re-encode', 0)} re-encoded); "
        f"VMAF of the re-encodes: min {min(vmafs, default=0):.1f}, median "
        f"{statistics.median(vmafs) if vmafs else 0:.1f}; {wall:.0f} s wall "
        f"(--preset {args.preset}, --workers {args.workers})"
    )
    return 0 if fixed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
