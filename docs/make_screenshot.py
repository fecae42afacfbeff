"""Re-make docs/report.png: the HTML report of six typical fixtures, shot by headless Chromium.

Run it with preflight installed: `python docs/make_screenshot.py [OUT.png]`.
tests/test_reports.py reuses `build_report`, `find_chromium`, `screenshot` and `dump_dom`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "fixtures" / "media"
REPRESENTATIVE = (
    "fmt_mp4_h264.mp4",  # pass
    "rotated_90.mp4",  # pass, with a warning
    "fps_29.97.mp4",  # reject: NTSC rate
    "res_718x1280.mp4",  # reject: too narrow
    "dur_6.0s.mp4",  # reject: between the two windows
    "err_random.mp4",  # error: not media
)
CHROMIUM_TIMEOUT_S = 60
# Root-safe (no sandbox), quiet (no first-run, sync, update or QUIC traffic) and GPU-free.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def build_report(sources: list[str], html_path: Path) -> list[str]:
    """Check `sources` with the default policy and write the HTML report; return the verdicts."""
    from preflight import check_one, load_policy
    from preflight.report import html

    policy = load_policy()
    results = [check_one(source, policy) for source in sources]
    html.write(results, html_path, policy=policy)
    return [r.verdict for r in results]


def find_chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def _run_chromium(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="preflight-chromium-") as profile:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_S,
            check=False,
        )


def screenshot(chromium: str, html_path: Path, png_path: Path, *, size: str = "1200,1600") -> None:
    """Render `html_path` in a window of `size` pixels and save it as a PNG."""
    png_path.unlink(missing_ok=True)
    done = _run_chromium(
        chromium, f"--window-size={size}", f"--screenshot={png_path}", html_path.resolve().as_uri()
    )
    if not png_path.is_file():
        raise RuntimeError(f"chromium made no screenshot (exit {done.returncode}): {done.stderr}")


def dump_dom(chromium: str, html_path: Path) -> str:
    """The DOM as Chromium parsed and rendered it, serialised."""
    done = _run_chromium(chromium, "--dump-dom", html_path.resolve().as_uri())
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom failed (exit {done.returncode}): {done.stderr}")
    return done.stdout


def main(argv: list[str]) -> int:
    out = Path(argv[0]).resolve() if argv else ROOT / "docs" / "report.png"
    chromium = find_chromium()
    if chromium is None:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # so the report shows short, relative source names
    sources = [str((MEDIA / name).relative_to(ROOT)) for name in REPRESENTATIVE]
    with tempfile.TemporaryDirectory(prefix="preflight-report-") as folder:
        page = Path(folder) / "report.html"
        build_report(sources, page)
        screenshot(chromium, page, out, size="1200,2900")
    print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
