"""One file, one process: what `preflight check FILE` and `import preflight` load, and the
spelled-out stand-ins (parser per subcommand, help width, extension, policy walk) that let them.

Each run is a fresh interpreter that calls preflight.cli.main as the console script does and
lists the modules it loaded beyond those the bare interpreter had (an editable install's finder
loads pathlib before us: that is not ours). No timings: bench/single.py measures those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.cli import completion, parser
from preflight.policy.discover import _folders_up
from preflight.probing.local import _extension

from .conftest import FIXTURES, run_json

MP4 = FIXTURES / "media" / "fmt_mp4_h264.mp4"
MOV = FIXTURES / "media" / "fmt_mov_h264.mov"

# Run as the console script runs: main(argv), its exit code; then say what was loaded.
_HARNESS = """
import json, sys
before = set(sys.modules)
out, argv = sys.argv[1], sys.argv[2:]
if argv == ["--import-only"]:
    import preflight
    code = 0
else:
    from preflight.cli import main
    code = main(argv)
with open(out, "w") as f:
    json.dump({"code": code, "loaded": sorted(set(sys.modules) - before)}, f)
"""

# Never needed to check one local MP4/MOV without the cache: each is a library or a module of
# ours that only URLs, batches, the ledger, `init`, other backends or other commands need.
NOT_FOR_ONE_FILE = {
    "pymediainfo",
    "requests",
    "urllib3",
    "jsonschema",
    "sqlite3",
    "platformdirs",
    "concurrent.futures",
    "logging",
    "ipaddress",
    "socket",
    "ssl",
    "email",
    "tempfile",
    "shutil",
    "subprocess",
    "pathlib",
    "datetime",
    "importlib.resources",
    "tomllib",
    "fractions",
    "decimal",
    "preflight.policy.url",
    "preflight.probing.remote",
    "preflight.probing.ffprobe",
    "preflight.probing.mediainfo",
    "preflight.probing.worker",
    "preflight.cache",
    "preflight.ledger",
    "preflight.session",
    "preflight.cli.completion",
    "preflight.report.html",
    "preflight.report.junit",
    "preflight.fixing",
    "tqdm",  # the progress bar: only when one is drawn (a terminal, more than one source)
    "watchdog",  # `watch` alone
    "preflight.watch",
}


def loaded_by(tmp_path: Path, *argv: str, **extra_env: str) -> tuple[int, set[str]]:
    out = tmp_path / "loaded.json"
    env = {k: v for k, v in os.environ.items() if k != "PREFLIGHT_POLICY"} | extra_env
    done = subprocess.run(
        [sys.executable, "-c", _HARNESS, str(out), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no .preflight.json or pyproject.toml from here up
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    return report["code"], set(report["loaded"])


@pytest.mark.parametrize("video", [MP4, MOV], ids=["mp4", "mov"])
def test_one_local_file_loads_only_what_it_uses(tmp_path: Path, video: Path) -> None:
    code, loaded = loaded_by(tmp_path, "check", "--json", "--no-cache", str(video))
    assert code == 0
    assert "preflight.probing.boxes" in loaded  # the harness did run the check
    assert sorted(loaded & NOT_FOR_ONE_FILE) == []
    assert not any(
        name.startswith(("requests.", "urllib3.", "preflight.ledger.")) for name in loaded
    )


def test_the_cache_loads_sqlite_but_not_the_ledger_or_the_network(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite3")
    argv = ("check", "--json", "--ledger", ledger, str(MP4))
    assert loaded_by(tmp_path, *argv)[0] == 0  # fills the cache
    code, loaded = loaded_by(tmp_path, *argv)
    assert code == 0
    assert {"sqlite3", "preflight.cache"} <= loaded
    unused = NOT_FOR_ONE_FILE - {"sqlite3", "datetime", "preflight.cache", "preflight.ledger"}
    assert sorted(loaded & unused) == []
    # The probe cache needs the store, not the Ledger with its locks and rows of sessions, and a
    # cached file needs no box reader.
    assert sorted(loaded & {"preflight.ledger.book", "preflight.ledger.lock"}) == []
    assert sorted(n for n in loaded if n.startswith("preflight.probing.")) == [
        "preflight.probing.limits",
        "preflight.probing.names",
        "preflight.probing.options",
    ]


def test_the_default_ledger_is_found_without_platformdirs(tmp_path: Path) -> None:
    # Where most users keep the cache: no --ledger, no $PREFLIGHT_LEDGER, the XDG data folder.
    env = {"PREFLIGHT_LEDGER": "", "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    assert loaded_by(tmp_path, "check", "--json", str(MP4), **env)[0] == 0
    code, loaded = loaded_by(tmp_path, "check", "--json", str(MP4), **env)
    assert code == 0 and "preflight.cache" in loaded
    assert (tmp_path / "data" / "preflight" / "ledger.sqlite3").is_file()
    assert sorted(loaded & {"platformdirs", "pathlib", "preflight.probing.boxes"}) == []


def test_a_cached_result_says_so(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite3")
    first = run_json("check", "--json", "--ledger", ledger, str(MP4))[1]["results"][0]
    again = run_json("check", "--json", "--ledger", ledger, str(MP4))[1]["results"][0]
    assert (first["probe"]["cached"], again["probe"]["cached"]) == (False, True)
    for result in (first, again):
        del result["probe"]["cached"], result["probe"]["elapsed_ms"]
    assert first == again


def test_a_warm_check_writes_nothing_to_the_ledger(tmp_path: Path) -> None:
    # One open and one indexed read: no write lock, no commit, no checkpoint on close.
    ledger = tmp_path / "ledger.sqlite3"
    run_json("check", "--json", "--ledger", str(ledger), str(MP4))  # creates it, fills the cache
    before = ledger.stat()
    results = run_json("check", "--json", "--ledger", str(ledger), str(MP4))[1]["results"]
    assert results[0]["probe"]["cached"] is True
    after = ledger.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert not Path(f"{ledger}-wal").exists() or Path(f"{ledger}-wal").stat().st_size == 0


def test_import_preflight_loads_only_the_package(tmp_path: Path) -> None:
    code, loaded = loaded_by(tmp_path, "--import-only")
    assert code == 0
    assert {name for name in loaded if name.startswith("preflight")} == {"preflight"}
    assert sorted(loaded & {"typing", "re", "dataclasses", "json", *NOT_FOR_ONE_FILE}) == []


def test_a_batch_and_a_url_still_load_their_parts(tmp_path: Path) -> None:
    # The deferred imports are still made where they are needed (a missing one would be an
    # `internal` error result, not a failure to import).
    code, loaded = loaded_by(tmp_path, "check", "--json", "--no-cache", str(MP4), str(MOV))
    assert code == 0 and "concurrent.futures" in loaded
    code, loaded = loaded_by(
        tmp_path, "check", "--json", "--no-cache", "http://user:secret@127.0.0.1:9/v.mp4"
    )
    assert code == 1  # url.credentials: judged before anything is fetched
    assert "preflight.policy.url" in loaded


# The parser: one subcommand built when argv names it, the same answers as the whole parser.

SAMPLES = [
    ["check", "--json", "--no-cache", "a.mp4"],
    ["check", "-r", "--include", "*.mkv", "--probe", "both", "--profile", "kling", "dir"],
    ["fix", "--dry-run", "--extend", "loop", "a.mp4"],
    ["validate-request", "-", "--json"],
    ["policy", "--profile", "kling"],
    ["init", "--video-url", "https://example.com/v.mp4", "--dry-run", "--json"],
    ["stage", "a.mp4", "--to", "s3://bucket/prefix/"],
    ["sessions", "show", "abc"],
    ["watch", "dir", "--sort", "--interval", "0.5"],
    ["sandbox", "--port", "0"],
    ["completion", "fish"],
]


@pytest.mark.parametrize("argv", SAMPLES, ids=[a[0] for a in SAMPLES])
def test_a_subcommand_parses_alike_alone_and_among_all(argv: list[str]) -> None:
    alone = parser.build_parser(argv)
    assert alone._subparsers is not None
    (action,) = alone._subparsers._group_actions
    assert list(action.choices) == [argv[0]]
    assert vars(alone.parse_args(argv)) == vars(parser.build_parser().parse_args(argv))


def test_every_subcommand_is_in_the_whole_parser_in_order() -> None:
    whole = parser.build_parser()
    assert whole._subparsers is not None
    (action,) = whole._subparsers._group_actions
    assert list(action.choices) == list(parser._SUBCOMMANDS)
    assert {a[0] for a in SAMPLES} == set(parser._SUBCOMMANDS)


def test_shell_names_are_the_completions() -> None:
    assert parser.SHELLS == completion.SHELLS


@pytest.mark.parametrize("columns", [None, "120", "50", "0", "junk"])
def test_help_width_is_what_argparse_would_ask_shutil(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert parser._help_width() == shutil.get_terminal_size().columns - 2


_NAME_PARTS = st.text(alphabet="ab./?", max_size=12)


@given(_NAME_PARTS)
def test_extension_is_pathlibs_suffix(name: str) -> None:
    expected = PurePosixPath(name.split("?")[0]).suffix.lower().lstrip(".")
    assert _extension(name) == expected


# Not "//x": POSIX lets a leading "//" mean another root, which pathlib keeps; no current folder
# starts so.
@given(st.one_of(_NAME_PARTS.map(lambda s: "/" + s), _NAME_PARTS).filter(lambda s: s[:2] != "//"))
def test_policy_walk_is_pathlibs_parents(start: str) -> None:
    folder = Path(start).absolute()
    assert list(_folders_up(start)) == [str(p) for p in (folder, *folder.parents)]
