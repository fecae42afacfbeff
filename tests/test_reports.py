"""The file reports (JUnit XML, CSV, HTML), built from real check results on the fixtures.

The HTML page is also opened in headless Chromium: required under CI, skipped elsewhere without it.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import stat
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from preflight import check_one, load_policy
from preflight.facts import Facts
from preflight.policy import Policy
from preflight.report import csv_report, html, junit
from preflight.report.thumbnails import grab_with_ffmpeg
from preflight.verdict import Failure, Result

from .conftest import FIXTURES, ROOT

# One of each kind: pass, pass with a warning, reject, reject with a warning, no video, unreadable.
NAMES = (
    "fmt_mp4_h264.mp4",
    "rotated_90.mp4",
    "fps_29.97.mp4",
    "vfr_mixed.mp4",
    "audio_only.mp4",
    "err_random.mp4",
)
WORDS = {"pass": "PASS", "reject": "REJECT", "error": "ERROR"}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def expected(manifest: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The manifest rows of NAMES, by source as the results name it."""
    by_file = {row["file"]: row for row in manifest}
    return {str(FIXTURES / "media" / name): by_file[name] for name in NAMES}


@pytest.fixture(scope="module")
def results(policy: Policy, expected: dict[str, dict[str, Any]]) -> list[Result]:
    found = [check_one(source, policy) for source in expected]
    for result in found:  # the reports are only as good as the results they are given
        assert result.verdict == expected[result.source]["verdict"], result.source
    return found


# JUnit


def test_junit_counts_and_one_testcase_per_source(
    tmp_path: Path, results: list[Result], policy: Policy, expected: dict[str, dict[str, Any]]
) -> None:
    out = tmp_path / "junit.xml"
    junit.write(results, out, policy=policy)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    verdicts = [row["verdict"] for row in expected.values()]
    assert suite.get("name") == "preflight"
    assert suite.get("tests") == str(len(NAMES))
    assert suite.get("failures") == str(verdicts.count("reject"))
    assert suite.get("errors") == str(verdicts.count("error"))
    assert suite.get("skipped") == "0"
    assert float(suite.get("time", "x")) >= 0
    assert root.get("tests") == suite.get("tests")

    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == list(expected)
    for case in cases:
        row = expected[case.get("name", "")]
        assert case.get("classname") == f"preflight.{policy.name}"
        assert [f.get("type") for f in case.findall("failure")] == row["rules"]
        for failure in case.findall("failure"):
            assert failure.get("message")
            assert "actual: " in (failure.text or "") and "allowed: " in (failure.text or "")
            assert "fix: " in (failure.text or "")
        errors = case.findall("error")
        if row["verdict"] == "error":
            assert [e.get("type") for e in errors] == ["not_media"]
            assert errors[0].get("message")
        else:
            assert errors == []
        out_text = case.findtext("system-out") or ""
        for warning in row["warnings"]:
            assert warning in out_text


def test_junit_survives_unprintable_source_names(tmp_path: Path, policy: Policy) -> None:
    # a control character and an undecodable byte (surrogateescape) in a file name
    weird = Result("clip\x01\udcff.mp4", "error", error=Failure("missing", "no such file\x07"))
    out = tmp_path / "junit.xml"
    junit.write([weird], out, policy=policy)
    case = ET.parse(out).getroot().find("testsuite/testcase")
    # the control character cannot be in XML at all; the byte is shown as \xff, not lost
    assert case is not None and case.get("name") == "clip\ufffd\\xff.mp4"


def test_writes_are_atomic_and_leave_no_temporary_files(
    tmp_path: Path, results: list[Result], policy: Policy
) -> None:
    for writer, name in (
        (junit.write, "r.xml"),
        (csv_report.write, "r.csv"),
        (html.write, "r.html"),
    ):
        out = tmp_path / name
        out.write_text("old")
        writer(results, out, policy=policy)
        assert out.read_text(encoding="utf-8") != "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.html", "r.xml"]
    # like a plain open(): 0666 less the umask, not a private temporary file's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "r.xml").stat().st_mode) == 0o666 & ~umask


def test_one_registry_names_every_format(
    tmp_path: Path, results: list[Result], policy: Policy
) -> None:
    import io
    import json

    from preflight.report import REPORTERS, WRITERS, summarize

    # The CLI builds every stream reporter alike, by name (mypy does not check constructors).
    streams = {}
    for name, reporter_class in REPORTERS.items():
        stream = streams[name] = io.StringIO()
        reporter = reporter_class(stream, color=False)
        for result in results:
            reporter.result(result)
        reporter.finish(results, summarize(results, policy=policy.name, exit_code=3))
        assert stream.getvalue(), name
    assert json.loads(streams["jsonl"].getvalue().splitlines()[0])["source"] == results[0].source
    assert [REPORTERS[n].in_input_order for n in ("text", "json", "jsonl")] == [True, True, False]
    # The file formats: named as their options, and the same bytes as the module's own write().
    assert list(WRITERS) == ["junit", "csv", "html"]
    for name, module in (("junit", junit), ("csv", csv_report)):
        WRITERS[name](results, tmp_path / f"registry.{name}", policy=policy)
        module.write(results, tmp_path / f"module.{name}", policy=policy)
        assert (tmp_path / f"registry.{name}").read_bytes() == (
            tmp_path / f"module.{name}"
        ).read_bytes()


def test_write_into_a_missing_folder_fails_and_leaves_nothing(
    tmp_path: Path, results: list[Result], policy: Policy
) -> None:
    with pytest.raises(FileNotFoundError):
        junit.write(results, tmp_path / "absent" / "junit.xml", policy=policy)
    assert list(tmp_path.iterdir()) == []


# CSV


def test_csv_one_row_per_source(
    tmp_path: Path, results: list[Result], policy: Policy, expected: dict[str, dict[str, Any]]
) -> None:
    out = tmp_path / "report.csv"
    csv_report.write(results, out, policy=policy)
    with out.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == csv_report.COLUMNS
    assert [row["source"] for row in rows] == list(expected)
    for row in rows:
        want = expected[row["source"]]
        assert row["verdict"] == want["verdict"]
        assert row["rules"].split() == want["rules"]
        assert row["warnings"].split() == want["warnings"]
    by_name = {Path(row["source"]).name: row for row in rows}
    ntsc = by_name["fps_29.97.mp4"]
    assert (ntsc["container"], ntsc["video_codec"]) == ("mp4", "h264")
    assert (ntsc["width"], ntsc["height"], ntsc["frame_count"]) == ("1280", "720", "90")
    assert ntsc["fps_exact"] == "30000/1001"
    assert float(ntsc["fps"]) == pytest.approx(29.97, abs=0.001)
    assert float(ntsc["duration"]) == pytest.approx(3.003, abs=0.001)
    assert int(ntsc["size_bytes"]) > 0
    assert by_name["rotated_90.mp4"]["rotation"] == "90"
    broken = by_name["err_random.mp4"]
    assert broken["error_kind"] == "not_media" and broken["error_message"]
    assert all(broken[column] == "" for column in csv_report.FACT_COLUMNS)


def test_csv_quotes_formula_text_but_not_negative_numbers(tmp_path: Path, policy: Policy) -> None:
    facts = Facts(container="=mp4", video_codec="@h264", width=1280, rotation=-90, fps_exact="-1/1")
    rows = [
        Result('=HYPERLINK("http://x").mp4', "pass", facts=facts),
        Result("+1.mp4", "error", error=Failure("-kind", "\rmessage")),
        Result("plain.mp4", "error", error=Failure("missing", "no such file: =x")),
    ]
    out = tmp_path / "report.csv"
    csv_report.write(rows, out, policy=policy)
    with out.open(newline="", encoding="utf-8") as handle:
        first, second, third = list(csv.DictReader(handle))
    assert first["source"] == '\'=HYPERLINK("http://x").mp4'
    assert (first["container"], first["video_codec"], first["fps_exact"]) == (
        "'=mp4",
        "'@h264",
        "'-1/1",
    )
    assert (first["width"], first["rotation"]) == ("1280", "-90")  # numbers stay numbers
    assert (second["source"], second["error_kind"]) == ("'+1.mp4", "'-kind")
    assert second["error_message"] == "'\rmessage"
    assert (third["source"], third["error_message"]) == ("plain.mp4", "no such file: =x")


# HTML


def _page(tmp_path: Path, results: list[Result], policy: Policy) -> str:
    out = tmp_path / "report.html"
    html.write(results, out, policy=policy)
    return out.read_text(encoding="utf-8")


def test_html_is_self_contained(tmp_path: Path, results: list[Result], policy: Policy) -> None:
    page = _page(tmp_path, results, policy)
    assert 'src="http' not in page and "src='http" not in page
    assert "<link" not in page and "@import" not in page and "<script" not in page
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page)
    assert not re.search(r"(href|src)=\"(?!#|data:)", page)  # only in-page anchors and data URIs


def test_html_has_every_source_its_verdict_and_a_thumbnail(
    tmp_path: Path, results: list[Result], policy: Policy, expected: dict[str, dict[str, Any]]
) -> None:
    page = _page(tmp_path, results, policy)
    cards = _cards(page)
    assert [card["source"] for card in cards] == list(expected)
    for card in cards:
        want = expected[card["source"]]
        assert card["verdict"] == want["verdict"]
        assert card["badge"] == WORDS[want["verdict"]]
        for rule in [*want["rules"], *want["warnings"]]:
            assert rule in card["text"]
    assert page.count('src="data:image/jpeg;base64,/9j/') == 4  # the four files with video
    assert page.count("no video to preview") == 2  # audio only, and not media at all
    assert f"policy <strong>{policy.name}</strong>" in page
    assert "720–2160 px" in page and "2–5.5 s or 7–10.5 s" in page
    assert page.count("<svg") == 3 * 4  # three pictures for each file with a video track


def test_html_escapes_what_it_shows(tmp_path: Path, policy: Policy) -> None:
    hostile = Result(
        '<img src="http://x/a.png" onerror=alert(1)>.mp4',
        "error",
        error=Failure("missing", "<b>no</b> such file"),
    )
    page = _page(tmp_path, [hostile], policy)
    assert "<img src=" not in page and "<b>" not in page
    assert "&lt;img src=&quot;http://x/a.png&quot; onerror=alert(1)&gt;.mp4" in page


def test_thumbnail_fallback_placeholder_without_ffmpeg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, results: list[Result]
) -> None:
    # The ffmpeg path is what a machine where PyAV cannot load uses.
    monkeypatch.setenv("PATH", str(tmp_path))
    thumbnail = grab_with_ffmpeg(Path(results[0].source), box=html.THUMB_BOX, timeout_s=5)
    assert thumbnail.data_uri is None and "neither PyAV nor ffmpeg" in thumbnail.note


@pytest.mark.parametrize(
    ("script", "note"),
    [("sleep 30", "took over"), ("echo broken >&2; exit 1", "could not decode")],
    ids=["hangs", "fails"],
)
def test_thumbnail_fallback_placeholder_when_ffmpeg_hangs_or_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, results: list[Result], script: str, note: str
) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    thumbnail = grab_with_ffmpeg(Path(results[0].source), box=html.THUMB_BOX, timeout_s=1.0)
    assert thumbnail.data_uri is None and note in thumbnail.note


# Chromium: the page as a browser renders it


def _screenshot_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_screenshot", ROOT / "docs" / "make_screenshot.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chromium() -> str:
    found: str | None = _screenshot_script().find_chromium()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: CI must `apt-get install chromium`")
        pytest.skip("chromium is not installed (apt-get install chromium); required under CI")
    return found


def test_html_renders_in_headless_chromium(
    tmp_path: Path,
    results: list[Result],
    policy: Policy,
    expected: dict[str, dict[str, Any]],
    chromium: str,
) -> None:
    script = _screenshot_script()
    page = tmp_path / "report.html"
    html.write(results, page, policy=policy)

    cards = _cards(script.dump_dom(chromium, page))
    assert {card["source"]: card["verdict"] for card in cards} == {
        source: row["verdict"] for source, row in expected.items()
    }
    assert all(card["badge"] == WORDS[card["verdict"]] for card in cards)

    png = tmp_path / "report.png"
    script.screenshot(chromium, page, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_docs_screenshot_script_builds_its_report(tmp_path: Path) -> None:
    script = _screenshot_script()
    sources = [str(FIXTURES / "media" / name) for name in script.REPRESENTATIVE]
    verdicts = script.build_report(sources, tmp_path / "report.html")
    assert set(verdicts) == {"pass", "reject", "error"}


class _CardParser(HTMLParser):
    """Collects each card: its data-source, data-verdict, badge word and text."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self._in_badge = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "article" and "card" in classes:
            self.cards.append(
                {
                    "source": found.get("data-source") or "",
                    "verdict": found.get("data-verdict") or "",
                    "badge": "",
                    "text": "",
                }
            )
        self._in_badge = bool(self.cards) and "badge" in classes

    def handle_endtag(self, tag: str) -> None:
        self._in_badge = False

    def handle_data(self, data: str) -> None:
        if self.cards:
            self.cards[-1]["text"] += data
            if self._in_badge:
                self.cards[-1]["badge"] += data.strip()


def _cards(page: str) -> list[dict[str, str]]:
    parser = _CardParser()
    parser.feed(page)
    parser.close()
    return parser.cards
