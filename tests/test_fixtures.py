"""Every fixture in fixtures/manifest.json gets its expected verdict, rules and warnings.

Adding a case is adding a file and a manifest row; both backends must agree with the manifest.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from preflight import check_one, load_policy

from .conftest import FIXTURES, run_cli

ROWS: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
POLICY = load_policy()
# Fields on which MediaInfo and ffprobe read ffmpeg-made fixtures differently, with the reason.
# The verdict never depends on them: timing comes from our own box reader for both backends.
KNOWN_DISAGREEMENTS: dict[str, str] = {
    "frame_count": "ffprobe has no nb_frames for fragmented files; MediaInfo counts samples",
    "duration": "on edit lists ffprobe gives the presented duration, MediaInfo the media's; "
    "on fragments ffprobe reads the stream header",
    "container_duration": "MediaInfo rounds to the millisecond and counts fragments differently",
    "fps": "ffprobe's avg_frame_rate is frames/duration; MediaInfo snaps to a nominal rate",
    "video_codec": "MediaInfo names no codec for some streams ffprobe recognises",
    "has_audio": "MediaInfo does not count an audio track without samples",
}


def _id(row: dict[str, Any]) -> str:
    return str(row["file"])


@pytest.mark.parametrize("backend", ["auto", "mediainfo", "ffprobe"])
@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_fixture_verdict(row: dict[str, Any], backend: str) -> None:
    result = check_one(FIXTURES / "media" / row["file"], POLICY, backend=backend)
    assert result.verdict == row["verdict"], (result.error, result.violations)
    assert sorted(v.rule for v in result.violations) == sorted(row["rules"])
    warnings = {w.rule for w in result.warnings}
    assert set(row.get("warnings", [])) <= warnings
    if row["verdict"] == "error":
        assert result.error is not None and result.error.kind == row["error"]
    else:
        assert result.facts is not None and result.error is None


def test_probe_both_reports_only_known_disagreements() -> None:
    files = [str(FIXTURES / "media" / row["file"]) for row in ROWS if row["verdict"] != "error"]
    done = run_cli("check", "--json", "--probe", "both", *files)
    assert done.returncode in (0, 1, 3), done.stderr
    results = json.loads(done.stdout)["results"]
    assert len(results) == len(files)
    unexplained = [
        (r["source"], d["field"])
        for r in results
        for d in r["probe"]["disagreements"]
        if d["field"] not in KNOWN_DISAGREEMENTS
    ]
    assert unexplained == []


def test_manifest_covers_every_fixture_file() -> None:
    on_disk = {p.name for p in (FIXTURES / "media").iterdir()}
    listed = {row["file"] for row in ROWS}
    assert on_disk == listed
