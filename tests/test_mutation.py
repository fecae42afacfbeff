"""Seeded mutations of the fixtures through the real `preflight check`, under a memory limit.

Byte flips, counts set to 2^32-1, shortened bodies and contradictory tables in the index of every
fixture: each file must get a documented answer (pass, reject, or error of a documented kind),
in under 2 s, with the whole run inside 500 MB of address space and a timeout.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
from pathlib import Path

import pytest

from preflight.errors import ERROR_KINDS

from .conftest import FIXTURES, preflight_script
from .test_bmff import OPS, mutate

SEED = 20261127
PER_FIXTURE = 4
MEMORY = 500 << 20  # bytes of address space for the whole CLI run
MEDIA = [
    p
    for p in sorted((FIXTURES / "media").iterdir())
    if p.suffix in (".mp4", ".mov", ".m4a") and p.stat().st_size > 0
]
# Backends parse in child processes bounded like this: together with the CLI's own limit, each
# file is answered within the 2 s and 500 MB.
PROBE_BOUNDS = ["--probe-timeout", "1.5", "--probe-memory-mib", "450"]


def _mutants(folder: Path) -> list[Path]:
    rng = random.Random(SEED)
    out = []
    for source in MEDIA:
        data = source.read_bytes()
        for n in range(PER_FIXTURE):
            ops = [(rng.choice(OPS), rng.randrange(1 << 24)) for _ in range(rng.randint(1, 3))]
            path = folder / f"{source.stem}.m{n}{source.suffix}"
            path.write_bytes(mutate(data, ops))
            out.append(path)
    return out


def _limit_memory() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


@pytest.mark.parametrize("backend", ["auto", "mediainfo", "ffprobe"])
def test_mutated_fixtures_get_documented_answers_in_time_and_memory(
    tmp_path: Path, backend: str
) -> None:
    files = _mutants(tmp_path)
    assert len(files) >= 150
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = subprocess.run(
        [preflight_script(), "check", "--jsonl", "--no-cache", "--quiet", "--probe", backend]
        + PROBE_BOUNDS
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(files), done.stderr[-2000:]
    kinds = set()
    for result in results:
        assert result["verdict"] in ("pass", "reject", "error"), result
        if result["verdict"] == "error":
            assert result["error"]["kind"] in ERROR_KINDS, (result["source"], result["error"])
            assert result["error"]["message"] and "\n" not in result["error"]["message"]
            kinds.add(result["error"]["kind"])
        assert result["probe"]["elapsed_ms"] < 2000, (result["source"], result["probe"])
    # The mutations reach the index parsers, not only the top-level walk.
    assert "bad_index" in kinds, kinds
