"""Fixing many sources: where each output goes (distinct, an existing one skipped), a thread pool
(each ffmpeg is its own process, at most spawn.parallel_limit() at once), results handed over as
they finish; Ctrl-C cancels every running ffmpeg and removes every temp file before it returns.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from .deps import Policy, Result, UsageError
from .recheck import check_one
from .result import FixResult
from .run import fix, resolve_output
from .spawn import FixCancelled, parallel_limit


def outputs_for(sources: Sequence[str], out: str | None, *, dry_run: bool = False) -> list[str]:
    """Where each source's fixed copy goes (`out`: one file, or a folder, or None: beside it).

    Sources that would share the default output (x.mp4 and x.mov in one folder) each keep their
    extension in its name instead: x.mp4.fixed.mp4 and x.mov.fixed.mp4. UsageError for what no
    source of the batch can be fixed into (a URL, the source itself, a missing folder) and for
    two sources left with one output; an existing output is not an error here: that source is
    skipped when it comes up (fix_many), the others go on.
    """
    outputs = [resolve_output(s, out, force=True, dry_run=dry_run) for s in sources]
    if out is None or os.path.isdir(out):
        counts = Counter(_key(o) for o in outputs)
        for index, source in enumerate(sources):
            if counts[_key(outputs[index])] > 1:
                folder = os.path.dirname(outputs[index])
                outputs[index] = os.path.join(folder, f"{Path(source).name}.fixed.mp4")
    counts = Counter(_key(o) for o in outputs)
    clashes = sorted(o for o in outputs if counts[_key(o)] > 1)
    if clashes:
        raise UsageError(f"two sources would be fixed into {clashes[0]}: fix them apart")
    return outputs


def _key(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def fix_many(
    jobs: Sequence[tuple[str, str]],
    policy: Policy,
    *,
    workers: int,
    on_result: Callable[[int, FixResult], None],
    dry_run: bool = False,
    extend: str | None = None,
    force: bool = False,
    preset: str,
    ten_bit: str = "hevc",
) -> list[FixResult]:
    """Fix each (source, output) pair; `on_result(index, result)` in completion order.

    At most spawn.parallel_limit() at once, whatever `workers` asks: each ffmpeg may use its
    whole memory bound, and more of them than cores only wait for each other.
    """
    workers = min(workers, parallel_limit())
    cancel = threading.Event()
    results: list[FixResult | None] = [None] * len(jobs)

    def one(index: int) -> FixResult:
        source, output = jobs[index]
        try:
            return fix(
                source,
                output,
                policy,
                dry_run,
                extend=extend,
                force=force,
                preset=preset,
                cancel=cancel,
                ten_bit=ten_bit,
            )
        except FixCancelled:
            raise
        except UsageError as exc:  # its output exists (and no --force): this source only
            before = check_one(source, policy)
            return FixResult(source, "skipped", before, output=output, reason=str(exc))
        except Exception as exc:  # a bug must cost one source, not the batch
            before = Result(source, "error")
            return FixResult(source, "error", before, reason=f"{type(exc).__name__}: {exc}")

    def deliver(index: int, result: FixResult) -> None:
        results[index] = result
        on_result(index, result)

    if workers <= 1 or len(jobs) <= 1:
        for index in range(len(jobs)):
            deliver(index, one(index))  # Ctrl-C lands in this thread: fix() cleans up itself
        return [r for r in results if r is not None]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preflight-fix")
    futures: dict[Future[FixResult], int] = {}
    try:
        futures = {pool.submit(one, index): index for index in range(len(jobs))}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2)
            for future in done:
                if not future.cancelled():
                    deliver(futures[future], future.result())
    except BaseException:
        # Ctrl-C: stop queued jobs, make the running ones kill their ffmpeg and remove their temps.
        cancel.set()
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return [r for r in results if r is not None]


class InOrder:
    """Hands fix results on in input order as soon as all earlier ones are in (for people)."""

    def __init__(self, emit: Callable[[FixResult], None]) -> None:
        self._emit = emit
        self._waiting: dict[int, FixResult] = {}
        self._next = 0

    def __call__(self, index: int, result: FixResult) -> None:
        self._waiting[index] = result
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1
