"""`fix` on a stranger's folder (issue 20, items 1, 2, 4, 5, 6 and the batch): a name is data,
never a URL or an option; a second user racing our temp names writes nothing outside the
destination; ffmpeg runs bounded and dies with preflight; odd names give a result, not a raise.

Real files made by ffmpeg, the real console script, a real second user (`nobody`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight import fix
from preflight.errors import UsageError
from preflight.fixing.measure import packet_hashes

from .conftest import FIXTURES, make_video, preflight_script, run_cli

MEDIA = FIXTURES / "media"
DEADLINE_S = 60.0  # only a hang waits this long


def _names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- item 1 and 2: the file named is the file read ------------------------------------------


@pytest.mark.parametrize(
    ("name", "decoy"),
    [
        ("concat:secret.mov|secret.mov", "secret.mov"),
        ("file:other.mp4", "other.mp4"),
        ("-report.mp4", "report.mp4"),
    ],
)
def test_fix_reads_the_file_named_never_a_url_or_an_option(
    ffmpeg: str, tmp_path: Path, name: str, decoy: str
) -> None:
    # The named file is a lossless re-time (every packet kept); the decoy is another picture.
    shutil.copyfile(MEDIA / "fps_29.97.mp4", tmp_path / name)
    make_video(ffmpeg, tmp_path / decoy, "testsrc2=s=1280x720:r=30000/1001:d=3")
    done = run_cli("fix", "--json", "--", name, cwd=tmp_path)
    assert "Traceback" not in done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["status"] == "fixed", result
    output = tmp_path / Path(result["output"]).name
    assert packet_hashes(str(output)) == packet_hashes(str(tmp_path / name))
    assert packet_hashes(str(output)) != packet_hashes(str(tmp_path / decoy))
    assert not [p for p in _names_in(tmp_path) if p.endswith(".log")]  # no `-report` log


def test_check_probe_ffprobe_reads_the_file_named(ffmpeg: str, tmp_path: Path) -> None:
    # Matroska: no box reader of ours, so ffprobe gives the facts.
    make_video(ffmpeg, tmp_path / "file:good.mkv", "testsrc2=s=1920x1080:r=30:d=1")
    make_video(ffmpeg, tmp_path / "good.mkv", "testsrc2=s=640x360:r=30:d=1")
    make_video(ffmpeg, tmp_path / "-report", "testsrc2=s=1280x720:r=30:d=1", "-f", "matroska")
    done = run_cli(
        "check", "--json", "--probe", "ffprobe", "--", "file:good.mkv", "-report", cwd=tmp_path
    )
    assert "Traceback" not in done.stderr
    results = json.loads(done.stdout)["results"]
    sizes = [(r["facts"] or {}).get("width") for r in results]
    assert sizes == [1920, 1280], results
    assert not [p for p in _names_in(tmp_path) if p.endswith(".log")]


# --- item 6: names that are not text ---------------------------------------------------------


def test_a_name_that_is_not_utf8_or_holds_nul_gives_a_result(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/clip\xff.mp4"
    shutil.copyfile(MEDIA / "fps_29.97.mp4", raw)
    result = fix(os.fsdecode(raw))
    assert result.status == "fixed" and result.lossless, result.reason
    assert os.path.exists(os.fsencode(tmp_path) + b"/clip\xff.fixed.mp4")
    done = subprocess.run(
        [os.fsencode(preflight_script()), b"fix", b"--force", raw],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done
    assert done.stdout.startswith(b"FIXED ")
    nul = fix(str(tmp_path / "a\0b.mp4"))
    assert nul.status == "error" and "NUL" in nul.reason
    with pytest.raises(UsageError, match="NUL"):  # the caller's own argument: a usage error
        fix(os.fsdecode(raw), out=str(tmp_path / "o\0.mp4"), force=True)


# --- the batch -------------------------------------------------------------------------------


def test_x_mp4_and_x_mov_get_distinct_outputs_and_an_existing_one_is_skipped(
    tmp_path: Path,
) -> None:
    shutil.copyfile(MEDIA / "fps_29.97.mp4", tmp_path / "x.mp4")
    shutil.copyfile(MEDIA / "fps_25.mp4", tmp_path / "x.mov")
    shutil.copyfile(MEDIA / "fps_25.mp4", tmp_path / "y.mp4")
    (tmp_path / "y.fixed.mp4").write_bytes(b"the editor's own file")
    done = run_cli("fix", "--json", str(tmp_path))
    assert "Traceback" not in done.stderr
    document = json.loads(done.stdout)
    by_source = {Path(r["source"]).name: r for r in document["results"]}
    assert by_source["x.mp4"]["output"] == str(tmp_path / "x.mp4.fixed.mp4")
    assert by_source["x.mov"]["output"] == str(tmp_path / "x.mov.fixed.mp4")
    assert by_source["x.mp4"]["status"] == by_source["x.mov"]["status"] == "fixed"
    assert by_source["y.mp4"]["status"] == "skipped" and "--force" in by_source["y.mp4"]["reason"]
    assert (tmp_path / "y.fixed.mp4").read_bytes() == b"the editor's own file"
    assert done.returncode == 2 == document["summary"]["exit_code"]
    assert document["summary"]["skipped"] == 1
    forced = run_cli("fix", "--force", str(tmp_path / "y.mp4"))
    assert forced.returncode == 0 and forced.stdout.startswith("FIXED")
    assert packet_hashes(str(tmp_path / "y.fixed.mp4")) == packet_hashes(str(tmp_path / "y.mp4"))


# --- item 4: a second user racing the temp names in a shared folder --------------------------

_ATTACKER = r"""
import os, signal, sys, time
folder, victim, victim_dir = sys.argv[1:4]
end = time.monotonic() + 120  # the test terminates it long before
seen = set()
def report(*_):
    print(len(seen), flush=True)  # how many temp names it raced
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
print("ready", flush=True)
while time.monotonic() < end:
    time.sleep(0.001)
    for name in os.listdir(folder):
        if ".tmp-" not in name:
            continue
        seen.add(name)
        path = os.path.join(folder, name)
        try:
            if os.path.islink(path):
                continue
            if os.path.isdir(path):
                os.rmdir(path)  # only while empty: then a link to a folder of the victim's
                os.symlink(victim_dir, path)
            else:
                os.unlink(path)  # the folder is 0777 without the sticky bit: anyone may
                os.symlink(victim, path)
        except OSError:
            pass
"""


def _as_nobody(argv: list[str]) -> subprocess.Popen[str]:
    if os.geteuid() == 0:  # CI
        nobody = pwd.getpwnam("nobody")
        return subprocess.Popen(
            argv,
            user=nobody.pw_uid,
            group=nobody.pw_gid,
            extra_groups=[],
            stdout=subprocess.PIPE,
            text=True,
        )
    sudo = shutil.which("sudo")
    if sudo is None or subprocess.run([sudo, "-n", "true"], check=False).returncode != 0:
        pytest.fail("this test needs root or passwordless sudo to run a second user (nobody)")
    return subprocess.Popen([sudo, "-n", "-u", "nobody", *argv], stdout=subprocess.PIPE, text=True)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A 0777, not sticky folder that `nobody` can reach (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="preflight-shared-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_second_user_racing_the_temp_names_writes_nothing_outside(
    tmp_path: Path, shared_folder: Path
) -> None:
    vault = tmp_path / "vault"  # root-only: what a link must never let us write into
    vault.mkdir(mode=0o700)
    victim = vault / "secret"
    victim.write_bytes(b"root only\n")
    victim.chmod(0o600)
    # A 25 fps x264 clip: a lossless re-time in two ffmpeg runs, the widest window for a swap.
    source = shared_folder / "clip.mp4"
    shutil.copyfile(MEDIA / "fps_25.mp4", source)
    source.chmod(0o644)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    attacker = _as_nobody([python, "-c", _ATTACKER, str(shared_folder), str(victim), str(vault)])
    try:
        assert attacker.stdout is not None and attacker.stdout.readline() == "ready\n"
        outcomes = []
        for _ in range(3):
            done = run_cli("fix", "--json", "--force", str(source))
            assert "Traceback" not in done.stderr, done.stderr
            outcomes.append(json.loads(done.stdout)["results"][0]["status"])
    finally:
        attacker.terminate()
        raced, _ = attacker.communicate(timeout=DEADLINE_S)
    assert int(raced) >= 3, "the second user never saw a temp name: no race was run"
    assert victim.read_bytes() == b"root only\n"
    assert victim.stat().st_mode & 0o777 == 0o600
    assert _names_in(vault) == ["secret"]
    # And the fix itself wins: its temp folder holds a file from the start, so no one else can
    # remove it, and every name in it is reached through its descriptor.
    assert outcomes == ["fixed"] * 3, outcomes
    output = shared_folder / "clip.fixed.mp4"
    assert not output.is_symlink() and output.stat().st_uid == os.geteuid()
    assert packet_hashes(str(output)) == packet_hashes(str(source))
    # Nothing of ours left (a link the second user made in a race we then retried may stay).
    ours = sorted(p.name for p in shared_folder.iterdir() if not p.is_symlink())
    assert ours == ["clip.fixed.mp4", "clip.mp4"]


# --- item 5: bounded children ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bombs(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 16000x16000 H.264 frame shown for 3 s (~750 KB; making it takes ~2 GB for a second),
    and the same file with its container claiming 1280x720 (the stream's header says 16000)."""
    folder = tmp_path_factory.mktemp("bombs")
    bomb = make_video(
        ffmpeg,
        folder / "bomb.mp4",
        "color=c=black:s=16000x16000:r=1/3",
        *("-frames:v", "1", "-crf", "51", "-pix_fmt", "yuv420p"),
    )
    data = bytearray(bomb.read_bytes())
    entry = data.index(b"avc1", data.index(b"stsd")) + 4 + 24  # VisualSampleEntry width, height
    assert data[entry : entry + 4] == (16000).to_bytes(2, "big") * 2
    data[entry : entry + 4] = (1280).to_bytes(2, "big") + (720).to_bytes(2, "big")
    track = data.index(b"tkhd") + 4 + 76  # version 0: width, height in 16.16
    data[track : track + 8] = (1280 << 16).to_bytes(4, "big") + (720 << 16).to_bytes(4, "big")
    liar = folder / "liar.mp4"
    liar.write_bytes(bytes(data))
    return {"bomb": bomb, "liar": liar}


_PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.stdout, end="")
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(done.returncode)
"""


@pytest.mark.parametrize("which", ["bomb", "liar"])
def test_a_16000_square_h264_is_unfixable_within_bounded_memory(
    bombs: dict[str, Path], tmp_path: Path, which: str
) -> None:
    source = tmp_path / f"{which}.mp4"
    shutil.copyfile(bombs[which], source)
    # The peak resident size of every process the CLI started (ffmpeg and workers included).
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, preflight_script(), "fix", "--json", str(source)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 3,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    report, peak_kib = done.stdout.rsplit("\n", 2)[:2]
    (result,) = json.loads(report)["results"]
    assert result["status"] == "unfixable" and "16000×16000" in result["reason"], result
    assert done.returncode == 1
    assert int(peak_kib) < 512 * 1024, f"a child held {int(peak_kib) >> 10} MiB"
    assert _names_in(tmp_path) == [f"{which}.mp4"]


def test_ffmpeg_over_its_memory_bound_makes_the_source_unfixable(tmp_path: Path) -> None:
    shutil.copyfile(MEDIA / "res_1280x718.mp4", tmp_path / "clip.mp4")  # a scale: a re-encode
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = run_cli("fix", str(tmp_path / "clip.mp4"), env={**env, "PREFLIGHT_FIX_MEMORY_MIB": "64"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "ran out of its 64 MiB memory bound" in done.stdout, done.stdout
    assert _names_in(tmp_path) == ["clip.mp4"]


def _slow_source(ffmpeg: str, folder: Path) -> Path:
    # 640x360, 10 s: a scale (a re-encode), and `--preset veryslow` makes it last seconds.
    return make_video(ffmpeg, folder / "slow.mp4", "testsrc2=s=640x360:r=30:d=10")


def _ffmpeg_of(parent: int) -> int:
    """The pid of the ffmpeg `parent` started (waits for it to appear)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if (
                ppid == parent
                and b"ffmpeg" in os.path.basename(cmdline[0])
                and b"-preset" in cmdline
            ):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("ffmpeg never started")


def _gone(pid: int) -> bool:
    """Waits (a hang guard, not a timing) for `pid` to be dead or a zombie."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("target", ["preflight", "its process group"])
def test_sigkill_of_preflight_leaves_no_ffmpeg_and_the_next_run_sweeps_its_temp(
    ffmpeg: str, tmp_path: Path, target: str
) -> None:
    source = _slow_source(ffmpeg, tmp_path)
    proc = subprocess.Popen(
        [preflight_script(), "fix", "--preset", "veryslow", str(source)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, which the test can kill whole
    )
    try:
        child = _ffmpeg_of(proc.pid)
        if target == "preflight":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_ffmpeg = _gone(child)
    if not killed_ffmpeg:
        os.kill(child, signal.SIGKILL)
    assert killed_ffmpeg, "ffmpeg outlived preflight"
    assert [p for p in _names_in(tmp_path) if ".tmp-" in p], "the kill left no temp to sweep"
    # The next fix in that folder (of another source) sweeps what the killed one left.
    shutil.copyfile(MEDIA / "fps_29.97.mp4", tmp_path / "next.mp4")
    done = run_cli("fix", str(tmp_path / "next.mp4"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _names_in(tmp_path) == ["next.fixed.mp4", "next.mp4", "slow.mp4"]


def test_ffmpeg_past_its_deadline_is_killed_and_nothing_is_left(
    ffmpeg: str, tmp_path: Path
) -> None:
    source = _slow_source(ffmpeg, tmp_path)  # seconds of veryslow x264
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = run_cli(
        "fix", "--preset", "veryslow", str(source), env={**env, "PREFLIGHT_FIX_TIMEOUT_S": "0.5"}
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "ffmpeg took longer than 0.5 s" in done.stdout, done.stdout
    assert _names_in(tmp_path) == ["slow.mp4"]
