"""The real-world corpus in ../shared/corpus: each file gets the verdict its manifest row names.

Runs the real `preflight check --jsonl` once per backend; under CI the corpus must be present.
"""

from __future__ import annotations

import csv
import json
import os
from functools import cache
from typing import Any

import pytest

from .conftest import CORPUS, run_cli

MANIFEST = CORPUS / "manifest.tsv"
if not MANIFEST.exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"the corpus is missing at {CORPUS}: CI must have ../shared/corpus")
    pytest.skip(f"no corpus at {CORPUS} (outside CI only)", allow_module_level=True)

ROWS = list(csv.DictReader(MANIFEST.open(encoding="utf-8"), delimiter="\t"))
# Known backend limits: (backend, file) -> reason. Both backends read every file here today,
# because the box reader decides timing and truncation for both; keep this honest when it changes.
BACKEND_LIMITS: dict[tuple[str, str], str] = {}


@cache
def results(backend: str) -> dict[str, dict[str, Any]]:
    files = [str(CORPUS / "media" / row["file"]) for row in ROWS]
    done = run_cli("check", "--jsonl", "--probe", backend, *files, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(files)
    return {os.path.basename(r["source"]): r for r in lines}


def _split(cell: str) -> list[str]:
    return [item for item in cell.split(",") if item]


@pytest.mark.parametrize("backend", ["auto", "mediainfo", "ffprobe"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"])
def test_corpus_file(row: dict[str, str], backend: str) -> None:
    if (backend, row["file"]) in BACKEND_LIMITS:
        pytest.skip(BACKEND_LIMITS[(backend, row["file"])])
    got = results(backend)[row["file"]]
    also = _split(row["also_ok"])
    verdicts = {row["expected"]} | {a.split(":", 1)[1] for a in also if a.startswith("verdict:")}
    allowed_families = set(_split(row["families"])) | {a for a in also if ":" not in a}
    families = {v["rule"].split(".")[0] for v in got["violations"]}
    assert got["verdict"] in verdicts, got["error"] or got["violations"]
    assert set(_split(row["families"])) <= families
    assert families <= allowed_families
    if got["verdict"] == "error":
        assert got["error"]["message"] and "\n" not in got["error"]["message"]
