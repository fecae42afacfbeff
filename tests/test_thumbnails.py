"""The HTML report's thumbnails (issue 15): the first keyframe, small, decoded by the bounded
worker pool, and kept beside the probe facts so that a warm report decodes nothing.

Real videos made by ffmpeg, decoded back with PyAV to look at the picture; the real console script
for the cache; the hostile files of test_bounded for the bounds.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

from preflight import CheckOptions, Facts, check, load_policy
from preflight.cache import ProbeCache
from preflight.errors import ProbeError
from preflight.ledger import store as sqlite_store
from preflight.ledger.tables import SCHEMA_VERSION, upgrade_steps
from preflight.probing import worker
from preflight.probing.limits import ProbeLimits
from preflight.report import html
from preflight.report.thumbnails import JPEG_PREFIX, grab_with_ffmpeg
from preflight.verdict import Result

from .conftest import FIXTURES, make_video, run_cli
from .test_bounded import STTS, flipped_dolby_vision, huge_entry_count, many_tracks

MEDIA = FIXTURES / "media"


def _jpeg(data_uri: str | None) -> bytes:
    assert data_uri is not None and data_uri.startswith(JPEG_PREFIX)
    return base64.b64decode(data_uri.removeprefix(JPEG_PREFIX))


def _picture(jpeg: bytes) -> tuple[int, int, tuple[float, float, float]]:
    """Width, height and the mean (r, g, b) of a JPEG, decoded back with PyAV."""
    with av.open(io.BytesIO(jpeg), "r") as container:
        frame = next(container.decode(video=0))
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    data = bytes(plane)
    sums = [0, 0, 0]
    for row in range(rgb.height):  # rows are padded to line_size
        line = data[row * plane.line_size : row * plane.line_size + rgb.width * 3]
        for channel in range(3):
            sums[channel] += sum(line[channel::3])
    count = rgb.width * rgb.height
    return frame.width, frame.height, (sums[0] / count, sums[1] / count, sums[2] / count)


def _video_result(path: Path, width: int = 1280, height: int = 720) -> Result:
    facts = Facts("mp4", video_codec="h264", width=width, height=height, video_tracks=1)
    return Result(str(path), "pass", facts=facts)


@pytest.fixture(scope="module")
def clips(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("thumbs")
    red_then_blue = folder / "red_then_blue.mp4"
    # One red second, then blue with a keyframe every frame: a picture from anywhere but the
    # first keyframe is blue.
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=640x360:r=25:d=1",
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=640x360:r=25:d=3",
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-force_key_frames",
            "expr:gte(t,1)",
            str(red_then_blue),
        ],
        check=True,
        timeout=120,
    )
    return {
        "red_then_blue": red_then_blue,
        "portrait": make_video(ffmpeg, folder / "portrait.mp4", "testsrc2=s=720x1280:r=30:d=1"),
        # Noise at full resolution and near-lossless: the hardest picture to keep small.
        "noise": make_video(
            ffmpeg,
            folder / "noise.mp4",
            "testsrc2=s=1920x1080:r=25:d=1,noise=alls=100:allf=t",
            "-crf",
            "1",
        ),
    }


def test_the_thumbnail_is_the_first_keyframe(clips: dict[str, Path]) -> None:
    thumbnail = html.grab_thumbnail(_video_result(clips["red_then_blue"]))
    width, height, (red, green, blue) = _picture(_jpeg(thumbnail.data_uri))
    assert (width, height) == (html.THUMB_BOX[0], 108)  # 16:9 fit inside the box
    assert red > 150 and blue < 80 and green < 80, (red, green, blue)


def test_a_thumbnail_is_at_most_8_kib_even_for_noise(clips: dict[str, Path]) -> None:
    for name in ("noise", "red_then_blue", "portrait"):
        jpeg = _jpeg(html.grab_thumbnail(_video_result(clips[name])).data_uri)
        assert 0 < len(jpeg) <= 8192, (name, len(jpeg))
        assert jpeg.startswith(b"\xff\xd8")


def test_a_portrait_clip_stays_portrait(clips: dict[str, Path]) -> None:
    jpeg = _jpeg(html.grab_thumbnail(_video_result(clips["portrait"], 720, 1280)).data_uri)
    width, height, _ = _picture(jpeg)
    assert height == html.THUMB_BOX[1] and width < height


def test_the_ffmpeg_fallback_takes_the_first_keyframe_too(clips: dict[str, Path]) -> None:
    thumbnail = grab_with_ffmpeg(clips["red_then_blue"], box=html.THUMB_BOX, timeout_s=60)
    width, _, (red, _, blue) = _picture(_jpeg(thumbnail.data_uri))
    assert width == html.THUMB_BOX[0] and red > 150 and blue < 80


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("hostile-thumbs")
    files = {
        "dolby_vision_flipped.mp4": flipped_dolby_vision(),
        "stts_2pow32.mp4": huge_entry_count(STTS),
        "tracks_3000.mp4": many_tracks(),
        "not_video.mp4": os.urandom(200_000),
        "empty.mp4": b"",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


def test_a_hostile_file_gets_a_placeholder_with_a_note(
    hostile: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html, "THUMB_TIMEOUT_S", 5.0)
    # Facts that claim a video, so the decoder is really asked.
    thumbnails = html.grab_thumbnails([_video_result(path) for path in hostile])
    for path, thumbnail in zip(hostile, thumbnails, strict=True):
        if thumbnail.data_uri is not None:  # a flipped file may still hold a decodable frame
            assert len(_jpeg(thumbnail.data_uri)) <= 8192
            continue
        assert thumbnail.note.startswith("no preview:"), (path.name, thumbnail.note)
    assert thumbnails[-1].data_uri is None and thumbnails[-2].data_uri is None


def test_the_decoder_runs_under_the_memory_bound() -> None:
    good = str(MEDIA / "fmt_mp4_h264.mp4")
    with pytest.raises(ProbeError) as raised:
        worker.thumbnail(good, (192, 192), ProbeLimits(timeout_s=30, memory_mib=48))
    assert raised.value.kind == "resource_limit", raised.value
    # And the next job, with room, is answered by a fresh worker.
    assert worker.thumbnail(good, (192, 192), ProbeLimits(timeout_s=30)).startswith(b"\xff\xd8")


def test_the_report_process_never_imports_av(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from preflight import load_policy\n"
        "from preflight.report import html\n"
        "from preflight.verdict import Result\n"
        "from preflight.facts import Facts\n"
        f"r = Result({str(MEDIA / 'fmt_mp4_h264.mp4')!r}, 'pass',"
        " facts=Facts('mp4', width=1280, height=720, video_tracks=1))\n"
        f"html.write([r], {str(tmp_path / 'r.html')!r}, policy=load_policy())\n"
        "assert 'av' not in sys.modules, 'av imported in the parent'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.html").read_text().count('src="data:image/jpeg;base64,') == 1


def test_without_pyav_the_report_falls_back_to_ffmpeg_once(tmp_path: Path) -> None:
    # A stand-in `av` that cannot load, first on the path of the report and of its workers.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "av.py").write_text("raise ImportError('no PyAV on this machine')\n")
    work = _folder(tmp_path)
    for i in range(9):  # twelve videos: more than the decoding threads (THUMB_WORKERS <= 8)
        shutil.copy(MEDIA / "fmt_mp4_h264.mp4", work / f"copy{i}.mp4")
    code = (
        "import sys\n"
        "from preflight import check, load_policy\n"
        "from preflight.probing import worker\n"
        "from preflight.report import html\n"
        f"results = check(sorted(str(p) for p in __import__('pathlib').Path({str(work)!r})"
        ".iterdir()))\n"
        f"html.write(results, {str(tmp_path / 'r.html')!r}, policy=load_policy())\n"
        "print(worker.POOL.jobs['thumbnail'])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # Every video pictured by ffmpeg; the worker was asked until it said PyAV is missing (at most
    # once per decoding thread started before the answer came back), not once per file.
    assert (tmp_path / "r.html").read_text().count('src="data:image/jpeg;base64,') == 12
    assert 1 <= int(done.stdout) <= html.THUMB_WORKERS < 12


def _folder(tmp_path: Path) -> Path:
    work = tmp_path / "clips"
    work.mkdir()
    for name in ("fmt_mp4_h264.mp4", "dur_5.5s.mp4", "fps_24.mp4", "audio_only.mp4"):
        shutil.copy(MEDIA / name, work / name)
    return work


def test_a_warm_report_decodes_nothing(tmp_path: Path) -> None:
    work = _folder(tmp_path)
    policy = load_policy()
    cache = ProbeCache(tmp_path / "ledger.sqlite3")
    try:
        options = CheckOptions()
        sources = sorted(str(p) for p in work.iterdir())
        kept = cache.thumbnails(options.backend)
        pages = []
        for run in ("cold", "warm"):
            results = check(sources, policy=policy, options=options, cache=cache)
            before = worker.POOL.jobs["thumbnail"]
            html.write(results, tmp_path / f"{run}.html", policy=policy, thumbnails=kept)
            pages.append((worker.POOL.jobs["thumbnail"] - before, tmp_path / f"{run}.html"))
    finally:
        cache.close()
    (cold_jobs, cold_page), (warm_jobs, warm_page) = pages
    assert (cold_jobs, warm_jobs) == (3, 0)  # three videos, one audio file
    pictures = [_images(cold_page.read_text()), _images(warm_page.read_text())]
    assert len(pictures[0]) == 3 and pictures[0] == pictures[1]


def test_a_changed_file_gets_a_new_thumbnail(tmp_path: Path, ffmpeg: str) -> None:
    work = _folder(tmp_path)
    env = {**os.environ, "PREFLIGHT_LEDGER": str(tmp_path / "ledger.sqlite3")}
    page = tmp_path / "r.html"
    args = ("check", "--quiet", "--json", "--html", str(page), str(work))
    assert "Traceback" not in _cli(env, *args).stderr
    first = _images(page.read_text())
    make_video(ffmpeg, work / "fps_24.mp4", "color=c=green:s=1280x720:r=24:d=3")
    _cli(env, *args)
    second = _images(page.read_text())
    assert first[0] == second[0] and first[-1] != second[-1]
    # The changed file has a new key: its old row (facts and thumbnail) is simply never read.
    rows = _rows(tmp_path / "ledger.sqlite3")
    assert (len(rows), sum(1 for _, thumb in rows if thumb)) == (5, 4)  # audio: no picture


def test_no_cache_leaves_no_thumbnail_rows(tmp_path: Path) -> None:
    work = _folder(tmp_path)
    ledger = tmp_path / "ledger.sqlite3"
    env = {**os.environ, "PREFLIGHT_LEDGER": str(ledger)}
    page = tmp_path / "r.html"
    done = _cli(env, "check", "--quiet", "--no-cache", "--html", str(page), str(work))
    assert done.returncode == 1  # one reject
    assert len(_images(page.read_text())) == 3
    assert not ledger.exists() or not any(thumb for _, thumb in _rows(ledger))


def test_thumbnails_round_trip_through_postgresql(pg_ledger: str, tmp_path: Path) -> None:
    work = _folder(tmp_path)  # files of this test alone: the database is shared
    cache = ProbeCache(pg_ledger)
    try:
        path, other = str(work / "fmt_mp4_h264.mp4"), str(work / "fps_24.mp4")
        key = cache.file_key(path, "auto")
        cache.put(key, Facts("mp4", width=1280, height=720, video_tracks=1), [])
        kept = cache.thumbnails("auto")
        assert kept.get(path) is None
        kept.put_many([(path, "AAAA"), (other, "BBBB")])  # the other has no facts row
        assert kept.get(path) == "AAAA" and kept.get(other) is None
        assert cache.get(key) is not None  # the facts stay as they were
    finally:
        cache.close()


def _old_cache(path: Path) -> None:
    """A ledger as schema version 2 left it, its probe cache holding one row of facts."""
    conn = sqlite3.connect(path)
    try:
        # The tables of versions 1 and 2, as the migrations build them.
        for _, statements in upgrade_steps(0, sqlite_store._SCHEMA, path, "sqlite")[:2]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(
            "CREATE TABLE probe_cache (key TEXT PRIMARY KEY, facts TEXT NOT NULL,"
            " disagreements TEXT NOT NULL, stored_at TEXT NOT NULL)"
        )
        facts = json.dumps(Facts("mp4", width=1280, height=720, video_tracks=1).to_dict())
        conn.execute(
            "INSERT INTO probe_cache VALUES ('old-key', ?, '[]', '2026-01-01T00:00:00Z')",
            (facts,),
        )
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("with_cache_table", [True, False], ids=["cache-used", "init-only"])
def test_an_old_ledger_migrates_and_keeps_its_cached_facts(
    tmp_path: Path, with_cache_table: bool
) -> None:
    ledger = tmp_path / "old.sqlite3"
    _old_cache(ledger)
    if not with_cache_table:
        conn = sqlite3.connect(ledger)
        conn.execute("DROP TABLE probe_cache")
        conn.commit()
        conn.close()
    env = {**os.environ, "PREFLIGHT_LEDGER": str(ledger)}
    work = _folder(tmp_path)
    page = tmp_path / "r.html"
    done = _cli(env, "check", "--quiet", "--json", "--html", str(page), str(work))
    assert "Traceback" not in done.stderr and len(_images(page.read_text())) == 3
    conn = sqlite3.connect(ledger)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in conn.execute("PRAGMA table_info(probe_cache)")]
        assert columns == ["key", "facts", "disagreements", "stored_at", "thumbnail"]
        old = conn.execute("SELECT facts, thumbnail FROM probe_cache WHERE key = 'old-key'")
        assert (old.fetchone() is not None) is with_cache_table
    finally:
        conn.close()
    assert sum(1 for _, thumb in _rows(ledger) if thumb) == 3


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _rows(ledger: Path) -> list[tuple[str, Any]]:
    conn = sqlite3.connect(ledger)
    try:
        return list(conn.execute("SELECT key, thumbnail FROM probe_cache ORDER BY key"))
    finally:
        conn.close()


def _images(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('src="data:image/jpeg;base64,')[1:]]
