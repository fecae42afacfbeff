"""Fixing many sources: a thread pool (each ffmpeg is its own process), results handed over as
they finish; Ctrl-C cancels every running ffmpeg and removes every temp file before it returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .deps import Policy, Result
from .result import FixResult
from .run import fix
from .spawn import FixCancelled


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
    """Fix each (source, output) pair; `on_result(index, result)` in completion order."""
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
