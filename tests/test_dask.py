"""`check --dask`: a real `dask scheduler` and two `dask worker` processes on loopback, the real
console script against them, and the same answers as the local thread pool.

Every child has a timeout and is killed in a finalizer; nothing here waits on a clock to assert.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, run_cli

MEDIA = FIXTURES / "media"
START_TIMEOUT_S = 60  # the most a scheduler or worker may take to come up before the test fails


def _comparable(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each result without what the clock decides (how long a probe took)."""
    rows = []
    for result in document["results"]:
        result = dict(result)
        result.pop("probe_ms", None)
        if isinstance(result.get("probe"), dict):
            result["probe"] = {k: v for k, v in result["probe"].items() if k != "elapsed_ms"}
        rows.append(result)
    return rows


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=START_TIMEOUT_S, set_as_default=False)


@contextmanager
def dask_cluster(
    folder: Path,
    workers: int = 2,
    *,
    wrap: Sequence[Sequence[str]] = (),
    cwd: Path | None = None,
) -> Iterator[Cluster]:
    """`dask scheduler` and `dask worker` processes (no nanny: a killed worker stays dead).

    Worker n runs as `wrap[n] + [python -m dask worker ...]` when given (another mount
    namespace, say), in `cwd` (default: ours)."""
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    log = (folder / "dask.log").open("wb")
    dask = [sys.executable, "-m", "dask"]
    children: list[subprocess.Popen[bytes]] = []
    try:
        scheduler = subprocess.Popen(
            [
                *dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            stdout=log,
            stderr=log,
        )
        children.append(scheduler)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert scheduler.poll() is None, (folder / "dask.log").read_text()
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.05)
        address = json.loads(scheduler_file.read_text())["address"]
        for n in range(workers):
            children.append(
                subprocess.Popen(
                    [
                        *(wrap[n] if n < len(wrap) else ()),
                        *dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"w{n}",
                    ],
                    stdout=log,
                    stderr=log,
                    cwd=cwd,
                )
            )
        cluster = Cluster(address, scheduler, children[1:])
        if workers:
            with cluster.client() as client:
                client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        yield cluster
    finally:
        for child in reversed(children):
            child.kill()
            child.wait(timeout=30)
        log.close()


def _tasks_run_by_each_worker(client: Any) -> dict[str, set[str]]:
    """Worker address -> the keys of preflight tasks it ran (from the worker's own state log)."""

    def ran(dask_worker: Any) -> list[str]:
        return sorted(
            {e[0] for e in dask_worker.state.log if str(e[0]).startswith("preflight-probe-")}
        )

    return {address: set(keys) for address, keys in client.run(ran).items()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    reports = tmp_path_factory.mktemp("local-reports")
    done = run_cli(
        "check", "--no-cache", "--json", "--junit", str(reports / "junit.xml"),
        "--csv", str(reports / "report.csv"), str(MEDIA),
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), reports


def test_every_fixture_gets_the_same_answer_on_the_cluster_and_the_workers_did_the_probing(
    cluster: Cluster, local_run: tuple[int, dict[str, Any], Path], tmp_path: Path
) -> None:
    local_code, local, local_reports = local_run
    done = run_cli(
        "check", "--no-cache", "--json", "--dask", cluster.address,
        "--junit", str(tmp_path / "junit.xml"), "--csv", str(tmp_path / "report.csv"), str(MEDIA),
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    on_cluster = json.loads(done.stdout)
    assert done.returncode == local_code
    assert _comparable(on_cluster) == _comparable(local)  # same order, verdicts, facts, errors
    assert on_cluster["summary"] == local["summary"]
    assert len(local["results"]) > 40  # the whole fixture folder, not an empty run
    junit = (tmp_path / "junit.xml").read_text()
    assert junit.count("<testcase") == len(local["results"])
    csv_rows = (tmp_path / "report.csv").read_text().splitlines()
    assert len(csv_rows) == (local_reports / "report.csv").read_text().count("\n")
    # Every source was a task on one of the two worker processes, none ran in the CLI.
    with cluster.client() as client:
        ran = _tasks_run_by_each_worker(client)
    assert len(ran) == 2
    batches = {key.rsplit("-", 1)[0] for keys in ran.values() for key in keys}
    assert len(batches) == 1
    indexes = {int(key.rsplit("-", 1)[1]) for keys in ran.values() for key in keys}
    assert indexes == set(range(len(local["results"])))


def test_a_cached_source_is_judged_here_and_not_sent(cluster: Cluster, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    env = {**os.environ, "PREFLIGHT_LEDGER": str(ledger)}
    source = str(MEDIA / "fps_24.mp4")
    command = [sys.executable, "-m", "preflight", "check", "--json", "--dask", cluster.address]
    first = subprocess.run(
        [*command, source], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    second = subprocess.run(
        [*command, source], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["results"][0]["probe"]["cached"] is False
    assert json.loads(second.stdout)["results"][0]["probe"]["cached"] is True  # cache written


def test_local_processes_give_the_same_answers(
    local_run: tuple[int, dict[str, Any], Path],
) -> None:
    local_code, local, _ = local_run
    done = run_cli("check", "--no-cache", "--json", "--dask", "local:2", str(MEDIA))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == local_code
    assert _comparable(json.loads(done.stdout)) == _comparable(local)


def test_an_unreachable_scheduler_is_exit_2_in_one_line() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "check",
            "--dask",
            f"tcp://127.0.0.1:{port}",
            str(MEDIA / "fps_24.mp4"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(
        f"preflight: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    )
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    ("address", "said"),
    [("local:0", "must be 1 or more"), ("nonsense", "not a scheduler address")],
)
def test_a_bad_address_is_exit_2_in_one_line(address: str, said: str) -> None:
    done = run_cli("check", "--dask", address, str(MEDIA / "fps_24.mp4"), timeout=60)
    assert done.returncode == 2
    assert said in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_without_the_extra_dask_is_exit_2_naming_it() -> None:
    # The interpreter is told distributed is not there (None in sys.modules fails its import).
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "from preflight.cli import main\n"
        f"sys.exit(main(['check', '--dask', 'local:1', {str(MEDIA / 'fps_24.mp4')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "pip install 'preflight[dask]'" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_a_check_without_dask_never_imports_it() -> None:
    code = (
        "import sys\n"
        "from preflight.cli import main\n"
        f"main(['check', '--quiet', '--json', {str(MEDIA / 'fps_24.mp4')!r}])\n"
        "loaded = [m for m in ('distributed', 'dask') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


class _HeldServer(ThreadingHTTPServer):
    """Answers 404, but holds every request until `release` is set; `arrived` is set by each."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HeldHandler)
        self.arrived = threading.Semaphore(0)
        self.release = threading.Event()
        self.requests = 0


class _HeldHandler(BaseHTTPRequestHandler):
    server: _HeldServer

    def do_GET(self) -> None:
        self.server.requests += 1
        self.server.arrived.release()
        self.server.release.wait(timeout=120)
        with suppress(OSError):  # the worker that asked was killed
            self.send_error(404)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_worker_killed_mid_batch_costs_a_retry_not_the_batch(
    tmp_path: Path, local_run: tuple[int, dict[str, Any], Path]
) -> None:
    _, local, _ = local_run
    server = _HeldServer()
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    held = f"http://127.0.0.1:{server.server_address[1]}/held.mp4"
    with dask_cluster(tmp_path / "cluster") as cluster, cluster.client() as client:
        cli = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "preflight",
                "check",
                "--no-cache",
                "--json",
                "--allow-private-urls",
                "--dask",
                cluster.address,
                held,
                str(MEDIA),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The URL is source 0; the worker holding it is the one killed, mid-task.
            assert server.arrived.acquire(timeout=START_TIMEOUT_S), "the URL was never fetched"
            pids = client.run(os.getpid)
            executing = client.run(
                lambda dask_worker: [str(t.key) for t in dask_worker.state.executing]
            )
            holder = next(a for a, keys in executing.items() if any(k.endswith("-0") for k in keys))
            os.kill(pids[holder], signal.SIGKILL)
            server.release.set()
            out, err = cli.communicate(timeout=120)
        finally:
            cli.kill()
            server.shutdown()
    assert "Traceback" not in err, err
    results = json.loads(out)["results"]
    assert server.requests >= 2  # asked again, by the worker that lived
    # The server's answer, judged (not a `worker` error for a lost task).
    assert [v["rule"] for v in results[0]["violations"]] == ["url.status"], results[0]
    assert _comparable({"results": results[1:]}) == _comparable(local)
    assert cli.returncode == 3
