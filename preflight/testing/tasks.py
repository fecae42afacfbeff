"""The stand-in's Kling tasks: what `GET /kling/v1/videos/{action}/{task_id}` answers (API.md,
"Looking up a Kling task"), and a task of each route for the demo — finished, expired, unfinished,
failed, too long, close to its 30-day limit; and the catch-all a Sandbox made without tasks answers.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from ..sources import TASK_ACTIONS
from .answers import Answer, Fault, comet_error, envelope, fault_answer

__all__ = [
    "DAY_S",
    "KlingTask",
    "answer_query",
    "catch_all",
    "demo_tasks",
    "match_task_route",
    "queries_of",
]

DAY_S = 86400.0
_ROUTE = re.compile(r"^/kling/v1/videos/([a-z0-9-]+)/([^/]+)$")


@dataclass(frozen=True)
class KlingTask:
    """One task. Its age counts back from the stand-in's clock (the Date header it sends) when
    `created_ms` is None; a test of the clock gives an absolute `created_ms`."""

    task_id: str
    action: str  # the route that made it: only that route's query finds it
    status: str = "succeed"  # submitted, processing, succeed, failed
    status_msg: str = ""
    age_s: float = DAY_S
    created_ms: int | None = None
    videos: tuple[tuple[str, str, str], ...] = field(default=())  # (id, url, duration)

    def payload(self, clock_offset_s: float) -> dict[str, Any]:
        now_ms = round((time.time() + clock_offset_s) * 1000)
        created = (
            self.created_ms if self.created_ms is not None else now_ms - round(self.age_s * 1000)
        )
        result = {"videos": [{"id": i, "url": u, "duration": d} for i, u, d in self.videos]}
        return {
            "code": 0,
            "message": "SUCCEED",
            "request_id": uuid.uuid4().hex,
            "data": {
                "task_id": self.task_id,
                "task_status": self.status,
                "task_status_msg": self.status_msg,
                "task_info": {},
                "created_at": created,
                "updated_at": created + 2000,
                "task_result": result if self.status == "succeed" else {},
            },
        }


def match_task_route(path: str) -> tuple[str, str] | None:
    """(action, task_id) of a task query's path, or None."""
    found = _ROUTE.match(path)
    return None if found is None else (found.group(1), unquote(found.group(2)))


class _Route(Protocol):
    """What the query route reads of the Sandbox."""

    tasks: dict[str, KlingTask]
    task_faults: list[Fault]
    any_task: bool
    clock_offset_s: float
    _lock: threading.Lock


def answer_query(
    sandbox: _Route, action: str, task_id: str, *, presented: str, authorized: bool
) -> Answer:
    """The answer to a task query: auth first, then a scripted fault, then the task if this
    route made it, else code 1203 (an unlisted task of a catch-all Sandbox is `catch_all`)."""
    if presented.strip() in ("", "Bearer"):
        return comet_error(401, "missing api key", "missing_api_key")
    if not authorized:
        return envelope(401, 1001)
    with sandbox._lock:
        fault = sandbox.task_faults.pop(0) if sandbox.task_faults else Fault()
        task = sandbox.tasks.get(task_id)
    if fault.status:
        return fault_answer(fault, None)
    if task is None and sandbox.any_task:
        task = catch_all(task_id)
    if action not in TASK_ACTIONS or task is None or task.action != action:
        return envelope(404, 1203, f"resource does not exist: task {task_id}")
    return Answer(200, task.payload(sandbox.clock_offset_s), code=0)


def queries_of(requests: Iterable[Any], task_id: str | None) -> list[str]:
    """The paths of the GETs of the query route among a Sandbox's requests (of one task)."""
    out = []
    for request in requests:
        route = match_task_route(request.path) if request.method == "GET" else None
        if route is not None and (task_id is None or route[1] == task_id):
            out.append(request.path)
    return out


@functools.cache
def _example_videos() -> tuple[tuple[str, str, str], ...]:
    return tuple((f"78491234734494{n:04d}", "", "5") for n in range(10_000))


def catch_all(task_id: str) -> KlingTask:
    """What a Sandbox made without `tasks` answers for a task it does not list: a finished
    text2video task made a day ago holding the 5 s videos 784912347344940000-…49999 (API.md's
    example id and its neighbours, the ids tests of the init route use), none with a URL."""
    return KlingTask(task_id, "text2video", videos=_example_videos())


def demo_tasks(video_url: str) -> dict[str, KlingTask]:
    """A task of each route, each video's URL `video_url`; ids say what each is for."""

    def video(n: int, duration: str = "5.1") -> tuple[tuple[str, str, str], ...]:
        return ((f"91000000000000000{n}", video_url, duration),)

    made = [
        KlingTask("900000000000000001", "text2video", age_s=2 * DAY_S, videos=video(1)),
        KlingTask("900000000000000002", "image2video", age_s=31 * DAY_S, videos=video(2)),
        KlingTask("900000000000000003", "multi-image2video", status="processing"),
        KlingTask(
            "900000000000000004",
            "multi-elements",
            status="failed",
            status_msg="content safety check failed",
        ),
        KlingTask("900000000000000005", "lip-sync", videos=video(5, "6.0")),
        KlingTask("900000000000000006", "effects", age_s=30 * DAY_S - 1800, videos=video(6)),
    ]
    return {task.task_id: task for task in made}
