"""`check --dask` when the cluster misbehaves (issue 21): no worker ever joins, an address Dask
cannot dial, workers in another folder, a worker that cannot see the files, the scheduler lost
mid-run. Real `dask scheduler` / `dask worker` processes on loopback and the real console script.

The worker that "cannot see" the files runs in its own mount namespace (unshare) with an empty
tmpfs mounted over their folder: the same path, honestly absent there, as on a machine that
mounts the exports elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, preflight_script, run_cli
from .test_dask import (
    START_TIMEOUT_S,
    Cluster,
    _comparable,
    _HeldServer,
    _tasks_run_by_each_worker,
    dask_cluster,
)

MEDIA = FIXTURES / "media"
NAMES = [
    "fps_24.mp4", "dur_5.5s.mp4", "dur_1.9s.mp4", "fps_29.97.mp4", "fmt_mp4_h264.mp4",
    "moov_at_end.mp4", "dur_7.0s.mp4", "res_1280x720.mp4",
]  # fmt: skip


def _one_line(stderr: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("preflight: "), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def _names() -> list[str]:
    names = [n for n in NAMES if (MEDIA / n).is_file()]
    assert len(names) >= 6, names  # the fixtures this file relies on are there
    return names


def _hidden_from(folder: Path) -> list[str]:
    """A command prefix: run in a mount namespace where `folder` is an empty tmpfs."""
    mount = 'mount -t tmpfs preflight-hidden "$0" && exec "$@"'
    own = ["--map-root-user"] if os.geteuid() != 0 else []
    return ["unshare", *own, "--mount", "--propagation", "private", "sh", "-c", mount, str(folder)]


def test_a_scheduler_without_workers_gives_up_at_the_dask_timeout(tmp_path: Path) -> None:
    with dask_cluster(tmp_path / "cluster", workers=0) as cluster:
        done = run_cli(
            "check", "--dask", cluster.address, "--dask-timeout", "2", str(MEDIA / "fps_24.mp4"),
            timeout=90,
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    _one_line(done.stderr)
    assert cluster.address in done.stderr and "0 workers joined" in done.stderr
    assert "--dask-timeout" in done.stderr and done.stdout == ""


def test_an_address_dask_cannot_dial_is_one_line_at_once() -> None:
    done = run_cli("check", "--dask", "bogus://x:1", str(MEDIA / "fps_24.mp4"), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    _one_line(done.stderr)
    assert "bogus://x:1" in done.stderr and "not a scheduler address" in done.stderr


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two workers whose working folder is not the CLI's."""
    folder = tmp_path_factory.mktemp("elsewhere")
    with dask_cluster(folder / "cluster", cwd=folder) as running:
        yield running


def test_relative_paths_are_sent_as_absolute_ones(elsewhere: Cluster) -> None:
    names = _names()
    local = run_cli("check", "--no-cache", "--json", *names, cwd=MEDIA)
    address = elsewhere.address
    remote = run_cli("check", "--no-cache", "--json", "--dask", address, *names, cwd=MEDIA)
    assert "Traceback" not in remote.stderr, remote.stderr
    results = json.loads(remote.stdout)["results"]
    assert [r["source"] for r in results] == names  # shown as the user gave them
    assert not any(r["verdict"] == "error" for r in results), results
    assert _comparable(json.loads(remote.stdout)) == _comparable(json.loads(local.stdout))
    assert remote.returncode == local.returncode


def test_a_worker_that_cannot_see_the_files_is_not_trusted_with_them(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    names = _names()
    for n in range(3):  # 3 x 8: enough tasks that both idle workers are handed some at once
        for name in names:
            shutil.copyfile(MEDIA / name, exports / f"{n}-{name}")
    local = run_cli("check", "--no-cache", "--json", str(exports))
    with dask_cluster(tmp_path / "cluster", wrap=[[], _hidden_from(exports)]) as cluster:
        with cluster.client() as client:
            by_name = {v["name"]: a for a, v in client.scheduler_info()["workers"].items()}
        sighted, blind = by_name["w0"], by_name["w1"]
        both = run_cli("check", "--no-cache", "--json", "--dask", cluster.address, str(exports))
        with cluster.client() as client:
            ran = _tasks_run_by_each_worker(client)
        # Now only the worker that cannot see the files is left.
        cluster.workers[0].kill()
        cluster.workers[0].wait(timeout=30)
        with cluster.client() as client:
            while sighted in client.scheduler_info()["workers"]:
                client.sync(client._update_scheduler_info)  # until the scheduler notices
        alone = run_cli("check", "--no-cache", "--json", "--dask", cluster.address, str(exports))
    assert "Traceback" not in both.stderr + alone.stderr, both.stderr + alone.stderr
    # With a worker that can see them, every file got the answer it gets here...
    assert _comparable(json.loads(both.stdout)) == _comparable(json.loads(local.stdout))
    assert both.returncode == local.returncode
    assert ran.get(blind), ran  # ...although the blind worker was handed some of them
    # Alone, it is trusted with none: each is an error naming it and the path.
    results = json.loads(alone.stdout)["results"]
    assert alone.returncode == 3 and len(results) == 3 * len(names)
    for result in results:
        assert result["verdict"] == "error" and result["error"]["kind"] == "worker", result
        assert blind in result["error"]["message"]
        assert str(exports / os.path.basename(result["source"])) in result["error"]["message"]


def test_losing_the_scheduler_mid_run_reports_what_finished(tmp_path: Path) -> None:
    server = _HeldServer()
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    held = f"http://127.0.0.1:{server.server_address[1]}/held.mp4"
    files = [str(MEDIA / name) for name in _names()[:3]]
    try:
        with dask_cluster(tmp_path / "cluster") as cluster:
            cli = subprocess.Popen(
                [
                    preflight_script(), "check", "--no-cache", "--jsonl", "--allow-private-urls",
                    "--dask", cluster.address, held, *files,
                ],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert cli.stdout is not None
            try:
                finished: list[dict[str, Any]] = []
                assert server.arrived.acquire(timeout=START_TIMEOUT_S), "the URL was never asked"
                while len(finished) < len(files):
                    line = cli.stdout.readline()
                    assert line, "the CLI ended before the files were checked"
                    finished.append(json.loads(line))
                os.kill(cluster.scheduler.pid, signal.SIGKILL)
                cluster.scheduler.wait(timeout=30)
                rest, err = cli.communicate(timeout=90)
            finally:
                cli.kill()
    finally:
        server.release.set()
        server.shutdown()
    assert sorted(r["source"] for r in finished) == sorted(files)
    assert all(r["verdict"] != "error" for r in finished), finished
    _one_line(err)
    assert f"lost the Dask scheduler at {cluster.address}" in err
    assert f"{len(files)} of {len(files) + 1} sources were checked" in err
    (unfinished,) = [json.loads(line) for line in rest.splitlines()]
    assert unfinished["source"] == held and unfinished["error"]["kind"] == "worker"
    assert "lost the Dask scheduler" in unfinished["error"]["message"]
    assert cli.returncode == 3


def test_a_run_whose_workers_all_left_ends_at_the_dask_timeout(tmp_path: Path) -> None:
    server = _HeldServer()
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    held = f"http://127.0.0.1:{server.server_address[1]}/held.mp4"
    try:
        with dask_cluster(tmp_path / "cluster", workers=1) as cluster:
            cli = subprocess.Popen(
                [
                    preflight_script(), "check", "--no-cache", "--json", "--allow-private-urls",
                    "--dask", cluster.address, "--dask-timeout", "2", held,
                    str(MEDIA / "fps_24.mp4"),
                ],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                assert server.arrived.acquire(timeout=START_TIMEOUT_S), "the URL was never asked"
                cluster.workers[0].kill()  # the only worker, mid-task: the scheduler keeps it
                out, err = cli.communicate(timeout=90)
            finally:
                cli.kill()
    finally:
        server.release.set()
        server.shutdown()
    _one_line(err)
    assert f"the Dask scheduler at {cluster.address} has had no worker for 2 s" in err
    results = json.loads(out)["results"]
    assert results[0]["error"]["kind"] == "worker" and "no worker" in results[0]["error"]["message"]
    assert len(results) == 2 and cli.returncode == 3
