"""One `check --dask` run on a connected Client: send each source out, judge and cache what comes
back, and keep going (or stop, saying why) when the cluster misbehaves.

Faults it answers: a file sent by absolute path, never as the user typed it (a worker's working
folder is not ours); a worker that cannot see a file this machine sees is not trusted with it
(the task goes to another worker, or the result is an error naming the worker and the path); a
lost scheduler, or no worker for the timeout, ends the run with every unfinished source an
`error` of kind `worker` and one line for `on_lost`, never a hang or a traceback.
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..batch import Collected
from ..pipeline import CheckOptions, FileProbe, judge_file
from ..policy import Policy
from ..sources import is_url, redact_url
from ..verdict import Failure, Result
from .task import check_url_on_worker, probe_on_worker

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..cache import ProbeCache

# A task whose worker dies is put back by the scheduler (up to its allowed-failures, 3 by
# default); `retries` adds re-runs for a task that raised on a worker (ours never do by design,
# but a worker-side import or pickling failure would).
RETRIES = 2
TASK_PREFIX = "preflight-probe"  # every task key starts so: a worker's log shows what it ran
_POLL_S = 0.5  # how often a run with nothing finishing looks at the scheduler and its workers
# What a worker says of a file it cannot see (or not as we do) that this machine can read.
_BLIND_KINDS = frozenset({"missing", "permission", "not_a_file"})


@dataclass
class _Task:
    index: int
    name: str  # as the user gave it: what results show
    cache_key: str | None = None
    size_bytes: int | None = None  # the file's size here (None: a URL, or we cannot see it)
    blind: set[str] = field(default_factory=set)  # workers that could not see the file
    tries: int = 0


class _Run:
    def __init__(
        self,
        client: Client,
        address: str,
        sources: Sequence[str],
        policy: Policy,
        options: CheckOptions,
        on_result: Callable[[int, Result], None] | None,
        timeout_s: float,
        cache: ProbeCache | None = None,
    ) -> None:
        self.client = client
        self.address = address
        self.sources = sources
        self.policy = policy
        self.options = options
        self.cache = cache  # a file here, never shipped: workers get the options only
        self.collected = Collected(len(sources), on_result)
        self.timeout_s = timeout_s
        self.batch_id = uuid.uuid4().hex[:12]
        self.finished: queue.Queue[Future] = queue.Queue()
        self.waiting: dict[str, _Task] = {}  # task key -> what it checks
        self.delivered: set[int] = set()
        self.untrusted: set[str] = set()  # workers that failed to see a file we see
        self.lost = ""  # why the run stopped early, once it has
        self.no_workers_since: float | None = None

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> tuple[list[Result], str]:
        window = max(8, 4 * sum(self.client.nthreads().values()))
        next_index = 0
        while not self.lost and (next_index < len(self.sources) or self.waiting):
            while not self.lost and next_index < len(self.sources) and len(self.waiting) < window:
                self._submit_new(next_index)
                next_index += 1
            if self.lost or not self.waiting:
                continue
            try:
                future = self.finished.get(timeout=_POLL_S)
            except queue.Empty:
                self.lost = self._health()
                continue
            self._collect(future)
        if self.lost:
            done = len(self.delivered)
            for index, name in enumerate(self.sources):
                if index not in self.delivered:
                    self._fail(index, name, f"not checked: {self.lost}")
            self.lost = f"{self.lost}: {done} of {len(self.sources)} sources were checked"
        return self.collected.results(), self.lost

    def _health(self) -> str:
        """Why the run cannot go on ('' if it can): the scheduler is gone, or has had no worker
        for the timeout."""
        if self.client.status != "running":
            return f"lost the Dask scheduler at {self.address}"
        try:
            # One worker's details are enough to know there is one (a big cluster's full list
            # every poll would not be).
            identity = self.client.sync(
                self.client.scheduler.identity, n_workers=1, callback_timeout=self.timeout_s
            )
        except Exception:  # the connection broke, or the scheduler stopped answering
            return f"lost the Dask scheduler at {self.address}"
        if identity.get("workers"):
            self.no_workers_since = None
            return ""
        now = time.monotonic()
        if self.no_workers_since is None:
            self.no_workers_since = now
        if now - self.no_workers_since >= self.timeout_s:
            return (
                f"the Dask scheduler at {self.address} has had no worker for "
                f"{self.timeout_s:g} s (--dask-timeout)"
            )
        return ""

    # -- sending -----------------------------------------------------------------------------------
    def _submit_new(self, index: int) -> None:
        name = self.sources[index]
        task = _Task(index, name)
        if not is_url(name):
            cache = self.cache
            task.cache_key = cache.file_key(name, self.options.backend) if cache else None
            hit = cache.get(task.cache_key) if cache is not None else None
            if hit is not None:  # facts known here: nothing to send
                cached = FileProbe(name, hit[0], hit[1], None, 0.0, cached=True)
                self._deliver(index, judge_file(cached, self.policy, self.options))
                return
            task.size_bytes = _size_here(name)
        self._submit(task)

    def _submit(self, task: _Task, only: list[str] | None = None) -> None:
        key = f"{TASK_PREFIX}-{self.batch_id}-{task.index}"
        if task.tries:
            key = f"{TASK_PREFIX}-{self.batch_id}-r{task.tries}-{task.index}"
        task.tries += 1
        where: dict[str, Any] = {}
        if only is not None:
            where = {"workers": only, "allow_other_workers": False}
        elif self.untrusted:
            trusted = [w for w in self._workers() if w not in self.untrusted]
            if trusted:  # a preference: a file is still checked if only those workers remain
                where = {"workers": trusted, "allow_other_workers": True}
        try:
            if is_url(task.name):
                future = self.client.submit(
                    check_url_on_worker, task.name, self.policy, self.options,
                    key=key, retries=RETRIES, **where,
                )  # fmt: skip
            else:
                # By absolute path: the worker's working folder is not ours.
                future = self.client.submit(
                    probe_on_worker, os.path.abspath(task.name), self.options,
                    key=key, retries=RETRIES, **where,
                )  # fmt: skip
        except Exception:  # a closed client (the scheduler went away): no traceback, stop
            self.lost = self._health() or f"lost the Dask scheduler at {self.address}"
            return
        self.waiting[key] = task
        future.add_done_callback(self.finished.put)

    def _workers(self) -> list[str]:
        try:
            return list(self.client.scheduler_info()["workers"])
        except Exception:
            return []

    # -- receiving ---------------------------------------------------------------------------------
    def _collect(self, future: Future) -> None:
        task = self.waiting.pop(str(future.key), None)
        if task is None:
            return
        try:
            value = future.result()
        except CancelledError:
            # The client cancels every future when it loses the scheduler.
            if self.client.status != "running":
                self.lost = f"lost the Dask scheduler at {self.address}"
                return
            self._fail(task.index, task.name, "the Dask task was cancelled")
            future.release()
            return
        except Exception as exc:  # KilledWorker past the scheduler's allowed failures
            self._fail(task.index, task.name, f"the Dask task failed: {type(exc).__name__}: {exc}")
            future.release()
            return
        try:
            if isinstance(value, FileProbe):
                self._file_answer(task, replace(value, name=task.name), future)
            else:
                self._url_answer(task, value)
        finally:
            future.release()

    def _file_answer(self, task: _Task, probed: FileProbe, future: Future) -> None:
        failure, facts = probed.failure, probed.facts
        cannot_see = failure is not None and failure.kind in _BLIND_KINDS
        other_file = facts is not None and facts.size_bytes not in (0, task.size_bytes)
        if task.size_bytes is not None and (cannot_see or other_file):
            # We can read this file and the worker could not (or read another file there): its
            # answer is about its own file system, not the file the user named.
            worker = self._worker_of(future)
            task.blind.add(worker)
            self.untrusted.add(worker)
            others = [w for w in self._workers() if w not in task.blind]
            if others:
                self._submit(task, only=others)
                return
            said = failure.message if failure is not None else "it has another file there"
            self._fail(
                task.index,
                task.name,
                f"the Dask worker {', '.join(sorted(task.blind))} cannot see "
                f"{os.path.abspath(task.name)} as this machine does ({said}): give the workers "
                "the same view of the files",
            )
            return
        cache = self.cache
        if cache is not None and facts is not None:
            cache.put(task.cache_key, facts, probed.disagreements)
        self._deliver(task.index, judge_file(probed, self.policy, self.options))

    def _url_answer(self, task: _Task, result: Result) -> None:
        info, cache = result.remote, self.cache
        if cache is not None and info is not None and result.facts is not None:
            url_key = cache.url_key(
                info.final_url, info.etag, info.last_modified, info.size_bytes, self.options.backend
            )
            cache.put(url_key, result.facts, result.disagreements)
        self._deliver(task.index, result)

    def _worker_of(self, future: Future) -> str:
        """The worker holding `future`'s result (the one that ran it), or 'a worker'."""
        try:
            holders = self.client.who_has(future).get(future.key) or ()
        except Exception:
            return "a worker"
        return str(holders[0]) if holders else "a worker"

    def _deliver(self, index: int, result: Result) -> None:
        self.delivered.add(index)
        self.collected.deliver(index, result)

    def _fail(self, index: int, name: str, message: str) -> None:
        shown = redact_url(name) if is_url(name) else name
        failure = Failure("worker", message)
        self._deliver(index, Result(shown, "error", error=failure, backend=self.options.backend))


def _size_here(name: str) -> int | None:
    """The size of `name` if this machine can read it as a regular file, else None."""
    try:
        stat = os.stat(name)
    except (OSError, ValueError):
        return None
    if not os.path.isfile(name) or not os.access(name, os.R_OK):
        return None
    return stat.st_size


def fan_out(
    client: Client,
    address: str,
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    *,
    on_result: Callable[[int, Result], None] | None,
    timeout_s: float,
    cache: ProbeCache | None = None,
) -> tuple[list[Result], str]:
    """Every source's Result (input order), and why the run stopped early ('' if it did not)."""
    return _Run(client, address, sources, policy, options, on_result, timeout_s, cache).run()
