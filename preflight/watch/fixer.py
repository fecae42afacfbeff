"""watch --sort --fix: fixes run one at a time in a thread of their own, so a re-encode never holds
up the judging of newly dropped files; each fix is announced, recorded and reported when done.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..policy import Policy
from ..verdict import Result
from .folder import free_name, record

log = logging.getLogger("preflight.watch")


@dataclass(frozen=True)
class WatchEvent:
    """What the watch did besides a final verdict: `held` (an export still being written: left
    in place), `fixing` (a fix started on `source`), `fixed` (a fix ended; `fix` holds its
    FixResult.to_dict(), whatever its status, and `output` the copy it wrote)."""

    kind: str
    source: Path
    result: Result | None = None
    fix: dict[str, Any] = field(default_factory=dict)
    output: Path | None = None


OnEvent = Callable[[WatchEvent], None]


@dataclass(frozen=True)
class _Job:
    source: Path  # the rejected file, where sorting put it
    folder: Path  # where its fixed copy goes (passed/, same subfolder)
    result: Result  # its verdict


class Fixer:
    """A queue of fixes and the one thread that works through it until `stop` is set (which
    also kills a running ffmpeg: the fix then removes its temp files)."""

    def __init__(self, root: Path, policy: Policy, stop: threading.Event, on_event: OnEvent):
        self._root = root
        self._policy = policy
        self._stop = stop
        self._on_event = on_event
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="preflight-watch-fix", daemon=True)
        self._thread.start()

    def submit(self, source: Path, folder: Path, result: Result) -> None:
        self._jobs.put(_Job(source, folder, result))

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._fix(job)
            except Exception as exc:  # a failing fix costs the fixed copy, never the watch
                log.warning("%s: not fixed: %s", job.source, exc)

    def _fix(self, job: _Job) -> None:
        from ..fixing.run import fix
        from ..fixing.spawn import FixCancelled

        self._on_event(WatchEvent("fixing", job.source, job.result))
        job.folder.mkdir(parents=True, exist_ok=True)
        target = free_name(job.folder, f"{job.source.stem}.fixed.mp4")
        try:
            outcome = fix(job.source, target, self._policy, cancel=self._stop)
        except FixCancelled:
            return  # the watch is stopping: nothing was written
        report = outcome.to_dict()
        output = Path(outcome.output) if outcome.status == "fixed" and outcome.output else None
        record(self._root, {"event": "fix", "source": str(job.source), "fix": report})
        self._on_event(WatchEvent("fixed", job.source, job.result, report, output))
