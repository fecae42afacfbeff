"""init's look-up of a `video_id` + `task_id` before anything billed: the query client on init's
account, the route remembered in the ledger (ledger/tasks.py), the task judged (task_judge.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from ..errors import UsageError, VideoRejected
from ..ledger import Ledger
from ..ledger.tasks import TaskActions
from ..pipeline import CheckOptions
from ..policy import Policy, load_policy
from ..sources import KLING_PREFIX
from .client import InitClient
from .credentials import ApiKey, load_api_key
from .result import InitResult
from .task_judge import KlingCheck, judged_kling
from .task_query import TaskClient


@dataclass(frozen=True)
class KlingOptions:
    """What init was told about the look-up: --task-action, --no-probe-video-id, the probe's."""

    action: str | None
    probe: bool
    policy: Policy | None
    options: CheckOptions | None


def task_client_for(
    client: InitClient | None,
    base: str,
    api_key: ApiKey | None,
    api_key_file: str | None,
    debug: IO[str] | None,
    dry_run: bool,
) -> TaskClient | None:
    """The query client on init's account; None for a dry run without a key (nothing to ask)."""
    if client is not None:
        return TaskClient(client.api_base, client.key, debug=debug)
    try:
        return TaskClient(base, api_key or load_api_key(api_key_file), debug=debug)
    except UsageError:
        if dry_run:
            return None
        raise


def check_task(
    result: InitResult,
    book: Ledger,
    video_id: str,
    task_id: str,
    query: TaskClient | None,
    how: KlingOptions,
) -> None:
    """Look the task up and judge it; VideoRejected if the API would refuse the video_id."""
    if query is None:
        return
    policy = how.policy or load_policy()
    options = how.options or CheckOptions()
    answer, asked = query.find(task_id, action=how.action, cache=TaskActions(book))
    plan = KlingCheck(query, how.action, None, how.probe)
    source = f"{KLING_PREFIX}{task_id}/{video_id}"
    checked = judged_kling(source, answer, asked, task_id, video_id, policy, plan, options)
    result.check, result.verdict = checked, checked.verdict
    if checked.verdict == "reject":
        first = checked.violations[0].message if checked.violations else "rejected"
        raise VideoRejected(
            f"the Kling task rules out this video_id, nothing was sent: {first}", checked
        )
