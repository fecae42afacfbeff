"""Byte-identity of the command line's output between two commits (a refactor must change nothing).

    python bench/identity.py 2196b56 HEAD

Each commit is unpacked (git archive) and run as `python -m preflight` with it first on
PYTHONPATH, in the same empty folder with the same ledger path, so any difference is the code's:
`check` (JSON and text) on every file in fixtures/media under each backend, `--jsonl` and
`--format github`, the probe cache cold and warm, `policy` for each profile, `validate-request`
(text and JSON) on every body in tests/example-requests, and URL checks against loopback media
servers (plain, 404, credentials, private without --allow-private-urls, redirect hops, a refused
hop). Timings (`*_ms` in JSON, "N ms" in text) are blanked; everything else must be equal bytes.
Prints each difference and exits 1 if there is one. Not a speed measurement: no ratios here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from preflight.testing.media_server import Faults, MediaServer  # noqa: E402

MEDIA = ROOT / "fixtures" / "media"
REQUESTS = ROOT / "tests" / "example-requests"
BACKENDS = ("auto", "mediainfo", "ffprobe", "both")
_MS_JSON = re.compile(rb'("[a-z_]*_ms": )-?[0-9.e+-]+')
_MS_TEXT = re.compile(rb"\b[0-9]+(\.[0-9]+)? ?ms\b")


def _unpack(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", rev], cwd=ROOT, capture_output=True, check=True, timeout=120
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=120)
    return into


def _commands(urls: dict[str, str]) -> list[tuple[str, list[str]]]:
    files = sorted(str(p) for p in MEDIA.iterdir() if p.is_file())
    out: list[tuple[str, list[str]]] = []
    for backend in BACKENDS:
        common = ["check", "--no-cache", "--probe", backend, "--color", "never"]
        out.append((f"check json {backend}", [*common, "--json", *files]))
        out.append((f"check text {backend}", [*common, *files]))
    # --jsonl prints in completion order: one worker makes that the input order.
    out.append(("check jsonl", ["check", "--no-cache", "--jsonl", "--workers", "1", *files]))
    out.append(("check github", ["check", "--no-cache", "--format", "github", *files]))
    out.append(("check cache cold", ["check", "--json", "--ledger", "ledger.sqlite3", *files]))
    out.append(("check cache warm", ["check", "--json", "--ledger", "ledger.sqlite3", *files]))
    for profile in ("cometapi", "kling"):
        out.append((f"policy {profile}", ["policy", "--profile", profile]))
    out.append(("policy default", ["policy"]))
    for body in sorted(REQUESTS.rglob("*.json")):
        name = str(body.relative_to(REQUESTS))
        out.append((f"validate {name}", ["validate-request", str(body)]))
        out.append((f"validate --json {name}", ["validate-request", "--json", str(body)]))
    served = [urls["plain"] + p.name for p in sorted(MEDIA.iterdir()) if p.is_file()]
    lab = ["check", "--no-cache", "--color", "never", "--allow-private-urls"]
    out.append(("urls json", [*lab, "--json", *served]))
    out.append(("urls text", [*lab, *served]))
    out.append(("urls both json", [*lab, "--probe", "both", "--json", *served[:8]]))
    odd = [
        urls["plain"] + "no-such-file.mp4",
        urls["plain"].replace("http://", "http://user:secret@") + served[0].rsplit("/", 1)[1],
        urls["hops"] + "fmt_mp4_h264.mp4",
        urls["to_ftp"] + "fmt_mp4_h264.mp4",
        urls["to_closed"] + "fmt_mp4_h264.mp4",
    ]
    out.append(("odd urls json", [*lab, "--json", *odd]))
    out.append(("odd urls text", [*lab, *odd]))
    out.append(("private urls json", ["check", "--no-cache", "--json", served[0], odd[2]]))
    out.append(("completion bash", ["completion", "bash"]))
    return out


def _run(tree: Path, work: Path, argv: list[str]) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_")}
    env.update(
        PYTHONPATH=str(tree),
        PREFLIGHT_API_BASE="http://127.0.0.1:9",  # closed: nothing is ever sent
        XDG_DATA_HOME=str(work / "data"),
        HOME=str(work),
    )
    done = subprocess.run(
        [sys.executable, "-m", "preflight", *argv],
        cwd=work,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    text = b"exit %d\n--- stdout\n%s\n--- stderr\n%s" % (done.returncode, done.stdout, done.stderr)
    return _MS_TEXT.sub(b"N ms", _MS_JSON.sub(rb"\g<1>0", text))


def _compare(before: str, after: str, keep: Path | None) -> int:
    faults = {
        "hops": Faults(redirects=2),
        "to_ftp": Faults(redirect_to="ftp://example.com/a.mp4"),
        "to_closed": Faults(redirect_to="http://127.0.0.1:9/a.mp4"),
    }
    with tempfile.TemporaryDirectory(prefix="identity-") as tmp, MediaServer(MEDIA) as plain:
        base = Path(tmp)
        servers = {name: MediaServer(MEDIA, faults=f).start() for name, f in faults.items()}
        try:
            urls = {"plain": plain.base_url + "/"}
            urls |= {name: s.base_url + "/" for name, s in servers.items()}
            commands = _commands(urls)
            outputs: dict[str, dict[str, bytes]] = {}
            for i, rev in enumerate((before, after)):
                tree = _unpack(rev, base / f"tree{i}")
                work = base / "work"  # the same path for both: it may appear in the output
                work.mkdir()
                outputs[rev] = {}
                for label, argv in commands:
                    outputs[rev][label] = _run(tree, work, argv)
                shutil.rmtree(work)
        finally:
            for server in servers.values():
                server.stop()
    if keep is not None:  # every output, to read: KEEP/<rev>/<label>.txt
        for rev, by_label in outputs.items():
            (keep / rev).mkdir(parents=True, exist_ok=True)
            for label, output in by_label.items():
                (keep / rev / f"{label.replace('/', '_')}.txt").write_bytes(output)
    differing = 0
    for label, _argv in commands:
        old, new = outputs[before][label], outputs[after][label]
        if old != new:
            differing += 1
            print(f"DIFFERS: {label}\n--- {before}\n{old.decode(errors='replace')[:3000]}")
            print(f"--- {after}\n{new.decode(errors='replace')[:3000]}\n")
    total = sum(len(v) for v in outputs[before].values())
    print(f"{len(commands)} commands, {total} bytes of output each side; {differing} differ")
    return 1 if differing else 0


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    cli.add_argument("before")
    cli.add_argument("after", nargs="?", default="HEAD")
    cli.add_argument("--keep", type=Path, help="write every output under this folder")
    parsed = cli.parse_args()
    sys.exit(_compare(parsed.before, parsed.after, parsed.keep))
