"""The video_id path is checked before any billed call (issue 23): `init --video-id --task-id` and
`check kling:TASK/VIDEO` look the Kling task up (GET /kling/v1/videos/{action}/{task_id}) and refuse
what the API would refuse. Real console script, real loopback stand-in counting POSTs and GETs,
real media server for the videos' URLs.
"""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight.testing import Fault, Sandbox
from preflight.testing.media_server import MediaServer
from preflight.testing.tasks import DAY_S, KlingTask

from .conftest import FIXTURES, init_env, preflight_script

KEY = "sk-test-SECRET-video-id"
# The order the issue names; written out here, not imported from the code under test.
ACTIONS = (
    "text2video",
    "image2video",
    "multi-image2video",
    "multi-elements",
    "lip-sync",
    "effects",
)
MEDIA = FIXTURES / "media"
GOOD, EXPIRED, UNFINISHED, FAILED, LONG, NEAR, BAD_FPS, GONE, HOSTILE = (
    f"80000000000000000{n}" for n in range(1, 10)
)


def video(task: str, url: str, duration: str = "5.5") -> tuple[tuple[str, str, str], ...]:
    return ((f"v{task}", url, duration),)


def make_tasks(media: MediaServer) -> dict[str, KlingTask]:
    ok = media.url("dur_5.5s.mp4")
    made = [
        KlingTask(GOOD, "text2video", age_s=2 * DAY_S, videos=video(GOOD, ok)),
        KlingTask(EXPIRED, "image2video", age_s=31 * DAY_S, videos=video(EXPIRED, ok)),
        KlingTask(UNFINISHED, "multi-image2video", status="processing"),
        KlingTask(FAILED, "multi-elements", status="failed", status_msg="content risk found"),
        KlingTask(LONG, "lip-sync", videos=video(LONG, ok, "6.0")),
        KlingTask(NEAR, "effects", age_s=30 * DAY_S - 1800, videos=video(NEAR, ok)),
        # The task's facts are fine; its video breaks a media rule only a probe sees.
        KlingTask(BAD_FPS, "text2video", videos=video(BAD_FPS, media.url("fps_29.97.mp4"), "5")),
        KlingTask(GONE, "text2video", videos=video(GONE, media.url("no-such-file.mp4"))),
        KlingTask(
            HOSTILE,
            "text2video",
            status="failed",
            status_msg='<script>alert(1)</script>\n::error ::forged\x1b[31m "q",x&y',
        ),
    ]
    return {task.task_id: task for task in made}


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer(MEDIA) as server:
        yield server


@pytest.fixture
def api(media: MediaServer) -> Iterator[Sandbox]:
    with Sandbox(key=KEY, tasks=make_tasks(media)) as sandbox:
        yield sandbox


@pytest.fixture
def env(api: Sandbox, tmp_path: Path) -> dict[str, str]:
    return init_env(api.base_url, KEY, tmp_path)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [preflight_script(), *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr
    return done


def init(env: dict[str, str], task: str, *args: str, vid: str = "") -> tuple[int, dict[str, Any]]:
    done = run(
        env, "init", "--json", "--allow-private-urls", "--video-id", vid or f"v{task}",
        "--task-id", task, *args,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def routes(api: Sandbox, task: str) -> list[str]:
    return [path.split("/")[4] for path in api.gets(task)]


def test_a_good_task_is_looked_up_once_probed_and_opened(api: Sandbox, env: dict[str, str]) -> None:
    code, out = init(env, GOOD)
    assert code == 0, out
    assert api.posts() == 1 and len(api.sessions) == 1
    assert routes(api, GOOD) == ["text2video"]
    task = out["check"]["kling"]
    assert task["action"] == "text2video" and task["probed"] is True
    assert task["clock"] == "api" and 27.9 * DAY_S < task["margin_s"] < 28.1 * DAY_S
    assert out["check"]["facts"]["duration"] == pytest.approx(5.5, abs=0.05)


@pytest.mark.parametrize(
    ("task", "vid", "rule", "said"),
    [
        (EXPIRED, "", "video_id.expired", "past the API's 30-day limit"),
        (UNFINISHED, "", "video_id.task_unfinished", "not finished yet (processing)"),
        (FAILED, "", "video_id.task_failed", "content risk found"),
        (LONG, "", "video_id.duration", "lasts 6 s"),
        (GOOD, "v-not-there", "video_id.not_in_task", f"it holds: v{GOOD}"),
        ("799999999999999999", "", "video_id.not_found", "no task 799999999999999999"),
        (BAD_FPS, "", "fps.not_allowed", ""),
    ],
)
def test_what_the_api_would_refuse_is_refused_before_a_post(
    api: Sandbox, env: dict[str, str], task: str, vid: str, rule: str, said: str
) -> None:
    code, out = init(env, task, vid=vid)
    assert code == 1, out
    assert api.posts() == 0 and api.sessions == {}
    violations = out["check"]["violations"]
    assert violations and violations[0]["rule"].startswith(rule.split(".")[0])
    assert any(v["rule"] == rule for v in violations), violations
    assert said in violations[0]["message"] and violations[0]["hint"]


def test_the_routes_are_tried_in_order_and_then_remembered(
    api: Sandbox, env: dict[str, str]
) -> None:
    done = run(env, "init", "--allow-private-urls", "--video-id", f"v{NEAR}", "--task-id", NEAR)
    assert done.returncode == 0, done.stderr
    assert routes(api, NEAR) == list(ACTIONS)  # effects is the last route asked
    # Within the hour before the limit: opened, with the margin and a warning on the way.
    assert "days left of 30" in done.stdout and "video_id.expiring" in done.stdout
    # The ledger remembers the route: the next run (a reuse) costs one query, no POST.
    code, out = init(env, NEAR)
    assert code == 0 and out["reused"] is True
    assert routes(api, NEAR) == [*ACTIONS, "effects"] and api.posts() == 1


def test_task_action_names_the_one_route_asked(api: Sandbox, env: dict[str, str]) -> None:
    code, out = init(env, NEAR, "--task-action", "effects")
    assert code == 0, out
    assert routes(api, NEAR) == ["effects"] and api.posts() == 1
    # A wrong route named: that one GET only, and the task is not found there.
    code, out = init(env, LONG, "--task-action", "text2video")
    assert code == 1 and out["check"]["violations"][0]["rule"] == "video_id.not_found"
    assert routes(api, LONG) == ["text2video"] and api.posts() == 1


def test_the_age_is_judged_on_the_apis_clock(api: Sandbox, env: dict[str, str]) -> None:
    now_ms = round(time.time() * 1000)
    by_host = {
        "29d": KlingTask("1129", "text2video", created_ms=now_ms - round(29 * DAY_S * 1000),
                         videos=video("1129", "", "5")),
        "31d": KlingTask("1131", "text2video", created_ms=now_ms - round(31 * DAY_S * 1000),
                         videos=video("1131", "", "5")),
    }  # fmt: skip
    api.tasks.update({t.task_id: t for t in by_host.values()})
    # The API's clock runs two days ahead: 29 days by this host is 31 by the API's.
    api.clock_offset_s = 2 * DAY_S
    code, out = init(env, "1129")
    assert code == 1 and out["check"]["violations"][0]["rule"] == "video_id.expired", out
    # Two days behind: 31 days by this host is 29 by the API's, so it is still good.
    api.clock_offset_s = -2 * DAY_S
    code, out = init(env, "1131")
    assert code == 0, out
    assert out["check"]["kling"]["clock"] == "api"
    assert 0.9 * DAY_S < out["check"]["kling"]["margin_s"] < 1.1 * DAY_S
    assert api.posts() == 1


def test_a_video_not_probed_stands_on_the_tasks_facts(api: Sandbox, env: dict[str, str]) -> None:
    code, out = init(env, GONE)  # its URL answers 404: a warning, the task's facts stand
    assert code == 0, out
    assert [w["rule"] for w in out["check"]["warnings"]] == ["video_id.unprobed"]
    code, out = init(env, BAD_FPS, "--no-probe-video-id")
    assert code == 0 and out["check"]["kling"]["probed"] is False
    assert api.posts() == 2


@pytest.mark.parametrize(
    ("faults", "kind", "gets"),
    [
        ([Fault(status=401, code=1001)], "auth", 1),
        ([Fault(status=429, code=1302, retry_after="500")], "rate_limit", 1),
        ([Fault(status=402, comet_error=True)], "quota", 1),
    ],
)
def test_a_query_the_api_refused_is_exit_4(
    api: Sandbox, env: dict[str, str], faults: list[Fault], kind: str, gets: int
) -> None:
    api.task_faults.extend(faults)
    code, out = init(env, GOOD)
    assert code == 4 and out["error"]["kind"] == kind, out
    assert len(api.gets(GOOD)) == gets and api.posts() == 0


def test_server_errors_of_the_query_are_retried(api: Sandbox, env: dict[str, str]) -> None:
    # A 524 loses an init's answer (never sent again); a query bills nothing, so it is asked again.
    api.task_faults.extend(
        [Fault(status=503), Fault(status=524), Fault(status=429, code=1302, retry_after="0")]
    )
    code, out = init(env, GOOD)
    assert code == 0, out
    assert routes(api, GOOD) == ["text2video"] * 4 and api.posts() == 1


def test_a_wrong_key_costs_no_post(api: Sandbox, env: dict[str, str]) -> None:
    code, out = init({**env, "COMETAPI_KEY": KEY + "x"}, GOOD)
    assert code == 4 and out["error"]["kind"] == "auth"
    assert api.posts() == 0


def test_check_mixes_kling_videos_files_and_urls(
    api: Sandbox, env: dict[str, str], media: MediaServer, tmp_path: Path
) -> None:
    sources = [
        str(MEDIA / "dur_5.5s.mp4"),
        media.url("dur_7.0s.mp4"),
        f"kling:{GOOD}/v{GOOD}",
        f"kling:{EXPIRED}/v{EXPIRED}",
        f"kling:{HOSTILE}/v{HOSTILE}",
    ]
    reports = {name: tmp_path / f"r.{name}" for name in ("xml", "csv", "html")}
    done = run(
        env, "check", "--json", "--allow-private-urls", "--junit", str(reports["xml"]),
        "--csv", str(reports["csv"]), "--html", str(reports["html"]), *sources,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    results = {r["source"]: r for r in json.loads(done.stdout)["results"]}
    assert [results[s]["verdict"] for s in sources] == ["pass", "pass", "pass", "reject", "reject"]
    assert results[sources[2]]["kling"]["probed"] is True
    assert results[sources[3]]["violations"][0]["rule"] == "video_id.expired"
    assert api.posts() == 0  # check never opens a session
    # Every report names the rule, with the API's hostile text escaped for its format.
    junit = ET.parse(reports["xml"]).getroot()  # well-formed XML despite \x1b and <script>
    assert "video_id.task_failed" in ET.tostring(junit, encoding="unicode")
    assert "video_id.expired" in reports["csv"].read_text()
    page = reports["html"].read_text()
    assert "video_id.task_failed" in page and "<script>alert(1)" not in page
    for fmt in ("text", "github"):
        shown = run(env, "check", "--format", fmt, f"kling:{HOSTILE}/v{HOSTILE}").stdout
        assert "video_id.task_failed" in shown and "\x1b" not in shown
        assert "\n::error ::forged" not in shown


def test_only_kling_sources_need_a_key(api: Sandbox, env: dict[str, str]) -> None:
    keyless = {k: v for k, v in env.items() if k != "COMETAPI_KEY"}
    assert run(keyless, "check", str(MEDIA / "dur_5.5s.mp4")).returncode == 0
    done = run(keyless, "check", f"kling:{GOOD}/v{GOOD}")
    assert done.returncode == 2 and "COMETAPI_KEY" in done.stderr
    assert api.gets() == []
    # A key the API refuses: that source is an error (kind task_query), the file still passes.
    wrong = {**env, "COMETAPI_KEY": KEY + "x"}
    done = run(wrong, "check", "--json", str(MEDIA / "dur_5.5s.mp4"), f"kling:{GOOD}/v{GOOD}")
    results = json.loads(done.stdout)["results"]
    assert done.returncode == 3 and [r["verdict"] for r in results] == ["pass", "error"]
    assert results[1]["error"]["kind"] == "task_query" and "auth" in results[1]["error"]["message"]


def test_a_batch_asks_each_task_once(api: Sandbox, env: dict[str, str]) -> None:
    two = KlingTask("4242", "effects", videos=(("a", "", "5"), ("b", "", "5"), ("c", "", "9")))
    api.tasks["4242"] = two
    done = run(env, "check", "--json", "--workers", "4", *(f"kling:4242/{v}" for v in "abcd"))
    verdicts = [r["verdict"] for r in json.loads(done.stdout)["results"]]
    assert verdicts == ["pass", "pass", "pass", "reject"]
    # Six GETs find it (effects is the last route), then no other for the same task.
    assert routes(api, "4242") == list(ACTIONS)
