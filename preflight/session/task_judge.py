"""The `video_id` family of rules: what a Kling task query's answer says about a `video_id` the
init-selection route would take or refuse (API.md: a video of a finished task, made within the
last 30 days, lasting 2–5.5 s or 7–10.5 s), and the Result of checking a `kling:TASK/VIDEO` source:
the task's facts, then its video's URL probed and judged like any URL.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ApiError
from ..policy import Policy
from ..sources import KLING_PREFIX, TASK_ACTIONS, parse_kling, redact_url
from ..verdict import Failure, Result, Violation
from .task_query import ActionCache, TaskAnswer, TaskClient

__all__ = [
    "KLING_PREFIX",
    "MAX_AGE",
    "WARN_WITHIN",
    "KlingCheck",
    "MemoryActions",
    "check_kling",
    "judge_task",
    "parse_kling",
]

MAX_AGE = timedelta(days=30)  # API.md: only videos generated within the last 30 days
WARN_WITHIN = timedelta(hours=1)  # a video this close to the limit may expire before it is used
_UNFINISHED = ("submitted", "processing")
_EPSILON = 1e-6


@dataclass(frozen=True)
class KlingCheck:
    """How to check a Kling video: the query client, the cache of actions, and the probe."""

    client: TaskClient
    action: str | None = None  # --task-action: the only route asked
    cache: ActionCache | None = None
    probe: bool = True  # --no-probe-video-id turns it off

    def check(self, source: str, policy: Policy, options: Any) -> Result:
        """pipeline.KlingLookup: the Result of one kling:TASK/VIDEO source (check_kling)."""
        return check_kling(source, policy, self, options)


class MemoryActions:
    """ActionCache for one `check` run (its threads share it; the ledger's is init's), and the
    answer of each task asked, so that a batch queries each task once however many of its
    videos it names."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], str] = {}
        self._found: dict[str, tuple[TaskAnswer | None, list[str]]] = {}
        self._per_task: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def find(
        self, client: TaskClient, task_id: str, action: str | None
    ) -> tuple[TaskAnswer | None, list[str]]:
        with self._lock:
            lock = self._per_task.setdefault(task_id, threading.Lock())
        with lock:  # a second video of a task being asked waits for that answer
            if task_id not in self._found:
                self._found[task_id] = client.find(task_id, action=action, cache=self)
            return self._found[task_id]

    def cached_action(self, api_base: str, task_id: str) -> str | None:
        with self._lock:
            return self._known.get((api_base, task_id))

    def remember_action(self, api_base: str, task_id: str, action: str) -> None:
        with self._lock:
            self._known[(api_base, task_id)] = action


def judge_task(
    answer: TaskAnswer | None,
    video_id: str,
    policy: Policy,
    *,
    asked: list[str],
    task_id: str,
) -> tuple[list[Violation], list[Violation], dict[str, Any]]:
    """(violations, warnings, the task's facts for the `kling` object of the Result)."""
    info: dict[str, Any] = {"task_id": task_id, "video_id": video_id, "actions_asked": asked}
    if answer is None:
        tried = ", ".join(asked)
        return (
            [
                Violation(
                    "video_id.not_found",
                    f"no task {_clean(task_id)} under the routes asked ({tried})",
                    None,
                    list(TASK_ACTIONS),
                    "check the task_id and the account's key; name the route that made the "
                    "task with --task-action NAME",
                )
            ],
            [],
            info,
        )
    data = answer.data
    status = _clean(data.get("task_status"), 40)
    info.update(action=answer.action, task_status=status)
    if status in _UNFINISHED:
        return (
            [
                Violation(
                    "video_id.task_unfinished",
                    f"task {_clean(task_id)} is not finished yet ({status})",
                    status,
                    "succeed",
                    "wait until the task has succeeded, then try again",
                )
            ],
            [],
            info,
        )
    if status != "succeed":
        why = _clean(data.get("task_status_msg") or "no reason given")
        return (
            [
                Violation(
                    "video_id.task_failed",
                    f"task {_clean(task_id)} {status}: {why}",
                    status,
                    "succeed",
                    "generate the video again; a failed task holds no video",
                )
            ],
            [],
            info,
        )
    violations: list[Violation] = []
    warnings: list[Violation] = []
    videos = _videos(data)
    ids = [_clean(v.get("id"), 60) for v in videos]
    video = next((v for v in videos if str(v.get("id")) == video_id), None)
    if video is None:
        held = ", ".join(ids[:20]) or "none"
        violations.append(
            Violation(
                "video_id.not_in_task",
                f"video {_clean(video_id)} is not in task {_clean(task_id)} (it holds: {held})",
                video_id,
                ids,
                "use one of the task's video ids",
            )
        )
    _judge_age(data, answer.server_date, info, violations, warnings)
    if video is not None:
        info["url"] = redact_url(str(video.get("url") or ""))
        _judge_duration(video.get("duration"), policy, info, violations)
    return violations, warnings, info


def _videos(data: dict[str, Any]) -> list[dict[str, Any]]:
    result = data.get("task_result")
    videos = result.get("videos") if isinstance(result, dict) else None
    return [v for v in videos if isinstance(v, dict)] if isinstance(videos, list) else []


def _judge_age(
    data: dict[str, Any],
    server_now: datetime | None,
    info: dict[str, Any],
    violations: list[Violation],
    warnings: list[Violation],
) -> None:
    created_ms = data.get("created_at")
    if not isinstance(created_ms, (int, float)) or not math.isfinite(created_ms):
        warnings.append(
            Violation(
                "video_id.no_created_at",
                "the task has no created_at: its 30-day limit cannot be checked",
                created_ms,
                "Unix milliseconds",
                "",
            )
        )
        return
    # The API decides by its own clock: its Date header, this host's only when it sent none.
    now = server_now or datetime.now(timezone.utc)
    created = datetime.fromtimestamp(created_ms / 1000, timezone.utc)
    expires = created + MAX_AGE
    margin = expires - now
    info.update(
        created_at=created.isoformat(),
        expires_at=expires.isoformat(),
        margin_s=round(margin.total_seconds(), 3),
        clock="api" if server_now else "local",
    )
    if margin.total_seconds() < 0:
        violations.append(
            Violation(
                "video_id.expired",
                f"the video was made {_span(now - created)} ago, past the API's 30-day limit "
                f"by {_span(-margin)}",
                created.isoformat(),
                "within 30 days",
                "generate the video again (or download it and send it as video_url)",
            )
        )
    elif margin <= WARN_WITHIN:
        warnings.append(
            Violation(
                "video_id.expiring",
                f"the video reaches the API's 30-day limit in {_span(margin)}",
                created.isoformat(),
                "within 30 days",
                "open the session now, or download the video and send it as video_url",
            )
        )


def _judge_duration(
    raw: Any, policy: Policy, info: dict[str, Any], violations: list[Violation]
) -> None:
    try:
        duration = float(str(raw))
    except ValueError:
        duration = math.nan
    windows = policy.duration_windows
    allowed = " or ".join(f"{lo:g}–{hi:g} s" for lo, hi in windows)
    if not math.isfinite(duration):
        violations.append(
            Violation(
                "video_id.duration",
                f"the task gives no usable duration ({raw!r})",
                None,
                [[lo, hi] for lo, hi in windows],
                "",
            )
        )
        return
    info["duration_s"] = duration
    if not any(lo - _EPSILON <= duration <= hi + _EPSILON for lo, hi in windows):
        violations.append(
            Violation(
                "video_id.duration",
                f"the video lasts {duration:g} s; allowed: {allowed}",
                duration,
                [[lo, hi] for lo, hi in windows],
                "generate a video of an allowed length (5 or 10 s), or trim a download and "
                "send it as video_url",
            )
        )


def _clean(value: Any, limit: int = 200) -> str:
    """Text the API sent, fit for any report: control characters (a terminal escape, a newline
    that would forge a line) shown as escapes, and no longer than `limit`."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _span(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def check_kling(source: str, policy: Policy, how: KlingCheck, options: Any) -> Result:
    """The Result of `kling:TASK/VIDEO`: the task's rules, then (if wanted and reachable) its
    URL's. Never raises: a query the API refused is an `error` Result of that kind."""
    task_id, video_id = parse_kling(source)
    try:
        if isinstance(how.cache, MemoryActions):
            answer, asked = how.cache.find(how.client, task_id, how.action)
        else:
            answer, asked = how.client.find(task_id, action=how.action, cache=how.cache)
    except ApiError as exc:
        message = f"the task query failed ({exc.kind}): {exc}"
        return Result(source, "error", error=Failure("task_query", message))
    return judged_kling(source, answer, asked, task_id, video_id, policy, how, options)


def judged_kling(
    source: str,
    answer: TaskAnswer | None,
    asked: list[str],
    task_id: str,
    video_id: str,
    policy: Policy,
    how: KlingCheck,
    options: Any,
) -> Result:
    """The Result for a task already looked up (init looks it up itself, to raise ApiError)."""
    from ..pipeline import check_url  # the probe: only for a video the task's facts let through

    violations, warnings, info = judge_task(answer, video_id, policy, asked=asked, task_id=task_id)
    result = Result(source, "reject" if violations else "pass", violations, warnings)
    url = info.get("url")
    info["probed"] = False
    if violations:
        result.kling = info
        return result
    if not url:
        result.warnings.append(
            Violation(
                "video_id.unprobed",
                "the task gives no URL for the video; the task's facts stand",
                None,
                "a reachable URL",
                "",
            )
        )
    elif how.probe:
        checked = check_url(_url_of(answer, video_id), policy, options)
        if checked.verdict == "error" or checked.facts is None:
            # No media was read (a refused connection, a 404, an address the probe may not
            # visit): the task's own facts are all we have, so they decide.
            why = (
                checked.error.message
                if checked.error
                else checked.violations[0].message
                if checked.violations
                else "unreadable"
            )
            result.warnings.append(
                Violation(
                    "video_id.unprobed",
                    f"the video's URL could not be probed ({why}); the task's facts stand",
                    url,
                    "a reachable URL",
                    "--no-probe-video-id skips the probe",
                )
            )
        else:
            info["probed"] = True
            result = replace(
                checked,
                source=source,
                warnings=[*warnings, *checked.warnings],
                remote=checked.remote
                and replace(
                    checked.remote,
                    url=redact_url(checked.remote.url),
                    final_url=redact_url(checked.remote.final_url),
                ),
            )
    result.kling = info
    return result


def _url_of(answer: TaskAnswer | None, video_id: str) -> str:
    videos = _videos(answer.data) if answer else []
    return next((str(v.get("url") or "") for v in videos if str(v.get("id")) == video_id), "")
