"""What an editor's QA gate and an ingestion script see (issue 22, items 3, 6, 7 and 8): every
video in a folder named, `preflight fix` suggested first, and the small things a user hits first.

Real videos made by ffmpeg, the real console script, a real loopback media server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import preflight
from preflight.testing import Faults, MediaServer

from .conftest import FIXTURES, make_video, run_cli

MEDIA = FIXTURES / "media"
TESTSRC = "testsrc2=s=1280x720:r=30:d=2"


@pytest.fixture(scope="module")
def folder(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder: an MP4 that passes, four other containers, and three files of no video."""
    here = tmp_path_factory.mktemp("exports")
    (here / "ok.mp4").write_bytes((MEDIA / "fmt_mp4_h264.mp4").read_bytes())
    make_video(ffmpeg, here / "take.mkv", TESTSRC)
    make_video(ffmpeg, here / "take.3gp", TESTSRC, "-f", "3gp")
    make_video(ffmpeg, here / "TAKE.AVI", TESTSRC)
    import subprocess

    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", TESTSRC]
    vp9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"]
    subprocess.run([*cmd, *vp9, str(here / "take.webm")],
                   check=True)  # fmt: skip
    (here / "notes.txt").write_text("director's notes\n")
    (here / "edl.json").write_text("{}\n")
    (here / "project").write_bytes(b"\x00" * 10)
    return here


def test_a_folder_check_names_every_video_and_counts_what_it_skipped(folder: Path) -> None:
    done = run_cli("check", str(folder))
    assert done.returncode == 1, done.stderr
    for name in ("take.mkv", "take.webm", "TAKE.AVI"):
        line = next(x for x in done.stdout.splitlines() if x.endswith(name) or f"{name} " in x)
        assert line.startswith("REJECT"), done.stdout
    # 3GP is an MP4 brand: named, judged, and passing with its warning
    assert any("take.3gp" in x and x.startswith("PASS") for x in done.stdout.splitlines())
    assert "5 checked: 2 pass, 3 reject, 0 error" in done.stdout
    assert "skipped 3 files that are not video: 1 .json, 1 .txt, 1 no extension" in done.stdout
    code, document = _json("check", "--json", str(folder))
    assert code == 1
    assert document["summary"]["skipped"] == {
        "total": 3,
        "kinds": {".json": 1, ".txt": 1, "no extension": 1},
    }
    rejected = {r["source"]: r for r in document["results"] if r["verdict"] == "reject"}
    assert len(rejected) == 3
    for result in rejected.values():
        (violation,) = result["violations"]
        assert violation["rule"] == "container.unsupported"
        assert violation["hint"].startswith("preflight fix FILE (lossless: remux ")


def test_a_folder_of_only_other_files_says_so(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    done = run_cli("check", str(tmp_path))
    assert done.returncode == 3
    assert "no video files to check" in done.stdout
    assert "skipped 1 file that is not video: 1 .txt" in done.stdout.replace(
        "files that are", "file that is"
    )


@pytest.mark.parametrize(
    "name", ["fps_29.97.mp4", "fps_25.mp4", "dur_6.0s.mp4", "res_1280x718.mp4", "moov_at_end.mp4"]
)
def test_each_hint_names_fix_and_its_dry_run_step_before_ffmpeg(name: str) -> None:
    path = str(MEDIA / name)
    _, checked = _json("check", "--json", path)
    (result,) = checked["results"]
    problems = result["violations"] + result["warnings"]
    _, planned = _json("fix", "--dry-run", "--json", path)
    steps = {s["rule"]: s for s in planned["results"][0]["steps"]}
    assert steps, planned
    for problem in problems:
        if problem["rule"] not in steps:
            continue
        step = steps[problem["rule"]]
        how = "lossless" if step["lossless"] else "re-encode"
        # The hint comes from fix's plan without reading the file; the dry run may then refine a
        # copy cut by reading the packet list (which packet it ends after). So the hint names the
        # same step, lossless or not, by the same action ("cut the tail: …"), not its packets.
        action = step["detail"].split(":", 1)[0]
        assert problem["hint"].startswith(f"preflight fix FILE ({how}: {action}"), problem
        by_hand = problem["hint"].split("; or by hand: ", 1)
        assert len(by_hand) == 2 and "ffmpeg -i INPUT" in by_hand[1], problem
    text = run_cli("check", path).stdout
    fix_lines = [line for line in text.splitlines() if line.strip().startswith("fix:")]
    assert fix_lines and all("fix: preflight fix FILE (" in line for line in fix_lines if
                             "ffmpeg" in line)  # fmt: skip


def test_probe_both_says_unknown_and_rounds(ffmpeg: str, tmp_path: Path) -> None:
    # An Ogg: MediaInfo gives no duration for its video track; ffprobe gives no frame rate.
    ogv = tmp_path / "clip.ogv"
    import subprocess

    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=1280x720:r=30:d=2", "-c:v", "libtheora", "-q:v", "1", str(ogv)],
                   check=True)  # fmt: skip
    done = run_cli("check", "--probe", "both", str(ogv), str(MEDIA / "ntsc_jitter_ts600.mp4"))
    assert "None" not in done.stdout, done.stdout
    for line in done.stdout.splitlines():
        if line.strip().startswith("≠"):
            for number in line.replace(",", " ").split():
                if number.replace(".", "", 1).isdigit() and "." in number:
                    assert len(number.split(".")[1]) <= 3, line
    ogg = next(x for x in done.stdout.splitlines() if "clip.ogv" in x)
    # The container is the only reason it is rejected: an unknown duration is not out of range.
    assert "duration unknown" in ogg or "s" in ogg
    assert "the video track has no duration" not in done.stdout
    code, document = _json("check", "--json", str(ogv))
    assert code == 1
    rules = [v["rule"] for v in document["results"][0]["violations"]]
    assert rules == ["container.unsupported"], document


def test_an_unknown_duration_is_never_a_violation() -> None:
    facts = preflight.Facts("mp4", video_codec="h264", width=1280, height=720, fps=30.0,
                            video_tracks=1, duration=None)  # fmt: skip
    verdict = preflight.judge(facts, preflight.load_policy())
    assert verdict.verdict == "pass"
    assert [w.rule for w in verdict.warnings] == ["duration.unknown"]


def test_a_rejected_init_has_a_documented_error_kind(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with MediaServer(MEDIA) as server:
        url = server.url("fps_29.97.mp4")
        done = run_cli("init", "--json", "--video-url", url, "--allow-private-urls", env=env)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["error"]["kind"] == "rejected"
    readme = (FIXTURES.parent / "README.md").read_text()
    assert "`rejected`" in readme


def test_a_policy_that_extends_kling_is_named_by_itself(tmp_path: Path) -> None:
    house = tmp_path / "house.json"
    house.write_text(json.dumps({"extends": "kling", "fps": {"allowed": [24]}}))
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"name": "house", "extends": "kling"}))
    clips = [str(MEDIA / "fps_24.mp4"), str(MEDIA / "fps_30.mp4")]
    done = run_cli("check", "--policy", str(house), *clips)
    assert f"(policy {house})" in done.stdout, done.stdout
    assert "(policy house)" in run_cli("check", "--policy", str(named), *clips).stdout
    assert "(policy kling)" in run_cli("check", "--profile", "kling", *clips).stdout


def test_csv_to_stdout_is_csv_alone() -> None:
    clips = [str(MEDIA / "fps_24.mp4"), str(MEDIA / "fps_29.97.mp4")]
    done = run_cli("check", "--csv", "-", *clips)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("source,verdict,")
    assert len(lines) == 3 and all(line.count(",") >= 10 for line in lines), done.stdout
    refused = run_cli("check", "--csv", "-", "--json", *clips)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "--csv -" in refused.stderr


def test_dir_shows_the_public_names() -> None:
    names = dir(preflight)
    for name in preflight.__all__:
        assert name in names


def test_no_range_is_named_for_a_small_file_sent_whole() -> None:
    with MediaServer(MEDIA, faults=Faults(no_range=True)) as server:
        code, document = _json(
            "check", "--json", "--allow-private-urls", server.url("fmt_mp4_h264.mp4")
        )
    assert code == 0, document
    (result,) = document["results"]
    assert result["remote"]["range_supported"] is False
    assert "url.no_range" in [w["rule"] for w in result["warnings"]], result


def test_debug_marks_a_cut_answer(tmp_path: Path) -> None:
    from preflight.testing import Fault, Sandbox

    env = _env(tmp_path)
    with Sandbox(faults=[Fault(status=400, body="x" * 1000)]) as api, MediaServer(MEDIA) as media:
        env["PREFLIGHT_API_BASE"] = api.base_url
        env["COMETAPI_KEY"] = api.key
        done = run_cli("init", "--debug", "--video-url", media.url("fmt_mp4_h264.mp4"),
                       "--allow-private-urls", env=env)  # fmt: skip
    cut = [line for line in done.stderr.splitlines() if "<- HTTP" in line]
    assert cut, done.stderr
    assert any(line.endswith("(1000 characters)") and "…" in line for line in cut), cut


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PREFLIGHT_LEDGER"] = str(tmp_path / "ledger.sqlite3")
    env.setdefault("COMETAPI_KEY", "not-used")
    return env


def _json(*args: str) -> tuple[int, Any]:
    done = run_cli(*args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_dask_local_says_nothing_of_a_dashboard_port() -> None:
    import socket

    holder = socket.socket()
    try:
        holder.bind(("", 8787))  # the dashboard's default port, taken (if no one else has it)
        holder.listen()
    except OSError:
        pass  # already taken by another process: the same situation
    try:
        done = run_cli("check", "--dask", "local:2", str(MEDIA / "fps_24.mp4"), timeout=180)
    finally:
        holder.close()
    assert done.returncode == 0, done.stderr
    assert "8787" not in done.stderr and "in use" not in done.stderr, done.stderr


def test_eval_of_the_sandbox_returns_and_its_pid_stops_it(tmp_path: Path) -> None:
    import subprocess

    from .conftest import preflight_script

    # What the README says to type, in a real bash: eval returns, the lines were exported (a
    # child process sees them), the server answers, and kill "$PREFLIGHT_SANDBOX_PID" stops it.
    script = (
        f'eval "$({preflight_script()} sandbox)" || exit 9\n'
        'env | grep -E "^(PREFLIGHT_API_BASE|COMETAPI_KEY|PREFLIGHT_SANDBOX_PID)=" | sort\n'
        f"{preflight_script()} init --video-id 784912347344945152 --task-id 784912347344945000"
        " >/dev/null && echo opened\n"
        'kill "$PREFLIGHT_SANDBOX_PID" && echo stopped\n'
    )
    env = {**_env(tmp_path), "HOME": str(tmp_path)}
    for name in ("PREFLIGHT_API_BASE", "COMETAPI_KEY"):
        env.pop(name, None)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines[:3]] == [
        "COMETAPI_KEY",
        "PREFLIGHT_API_BASE",
        "PREFLIGHT_SANDBOX_PID",
    ], done.stdout
    assert lines[3:] == ["opened", "stopped"], done.stdout + done.stderr
    base = lines[1].split("=", 1)[1]
    import socket
    import time
    from urllib.parse import urlsplit

    for _ in range(100):  # SIGTERM is asynchronous: wait for it to land, then nothing listens
        try:
            socket.create_connection(("127.0.0.1", urlsplit(base).port or 0), 2).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the sandbox at {base} still answers after kill")
