"""The demo behind `bash dev.sh demo`: check the fixtures, serve them on loopback, open sessions on
the stand-in API and show the ledger. No API key and no network: everything runs on 127.0.0.1.

Step 6 shows the video_id path: a Kling task refused by its query, another opened.
Each step runs the real `preflight` command and prints it first: the output reads as a transcript.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .media_server import MediaServer
from .sandbox import DEMO_KEY, Sandbox
from .tasks import demo_tasks


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    shown = " ".join(command[:6]) + (" …" if len(command) > 6 else "")
    print(f"\n$ {shown}", flush=True)
    done = subprocess.run(command, env=env, text=True, capture_output=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    print(f"(exit {done.returncode})", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    media = Path(args[0] if args else "fixtures/media")
    if not media.is_dir():
        print(f"no folder {media}", file=sys.stderr)
        return 2
    script = shutil.which("preflight") or str(Path(sys.executable).with_name("preflight"))
    files = sorted(p for p in media.iterdir() if p.is_file())
    with (
        tempfile.TemporaryDirectory(prefix="preflight-demo-") as scratch,
        MediaServer(media) as server,
        Sandbox() as api,
    ):
        env = {
            **os.environ,
            "COMETAPI_KEY": DEMO_KEY,
            "PREFLIGHT_API_BASE": api.base_url,
            "PREFLIGHT_LEDGER": str(Path(scratch) / "ledger.sqlite3"),
        }
        print(f"fixtures served at {server.base_url}; stand-in API at {api.base_url}")
        print("1. Check every fixture on disk:")
        _run([script, "check", *map(str, files)], env)
        print("\n2. Check the passing ones again where the API would fetch them (over HTTP):")
        listed = subprocess.run(
            [script, "check", "--jsonl", *map(str, files)],
            env=env,
            text=True,
            capture_output=True,
            check=False,
        )
        passing = [
            json.loads(line)["source"]
            for line in listed.stdout.splitlines()
            if json.loads(line)["verdict"] == "pass"
        ]
        urls = [server.url(Path(p).name) for p in passing]
        _run([script, "check", "--allow-private-urls", *urls[:3]], env)
        print(
            "\n3. Open an editing session for each passing file (the stand-in fetches and "
            "judges it too):"
        )
        for url in urls[:5]:
            _run([script, "init", "--allow-private-urls", "--video-url", url], env)
        print("\n4. The same source again: the unexpired session is reused, nothing is sent:")
        _run([script, "init", "--allow-private-urls", "--video-url", urls[0]], env)
        print("\n5. A rejected file: nothing is sent:")
        rejected = next((p for p in files if p.name.startswith("fps_29.97")), files[0])
        _run(
            [script, "init", "--allow-private-urls", "--video-url", server.url(rejected.name)], env
        )
        print(
            "\n6. Kling-generated videos (video_id + task_id): the task is looked up first "
            "(not billed); one 31 days old is refused, a finished one is opened:"
        )
        # The stand-in's tasks, their videos served here (tasks.demo_tasks says what each is).
        five = next((Path(p).name for p in passing if "5.5s" in p), Path(passing[0]).name)
        api.tasks.update(demo_tasks(server.url(five)))
        for task in ("900000000000000002", "900000000000000001"):
            video = "91" + task[2:]
            command = ["init", "--allow-private-urls", "--video-id", video, "--task-id", task]
            _run([script, *command], env)
        print("\n7. The ledger:")
        _run([script, "sessions"], env)
        opened = len(api.sessions)
    print(f"\nThe stand-in opened {opened} sessions; the ledger was a temporary file.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
