"""Checking many sources at once: a thread pool, results handed over as they finish and returned
in input order. One bad source never stops the batch.

Threads suffice: MediaInfo runs in C with the GIL released, ffprobe and HTTP wait on I/O.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

from .pipeline import CheckOptions, check_one, sharing_connections
from .policy import Policy
from .sources import is_url
from .verdict import Failure, Result

# A URL probe is one or two round trips and a few ms of parsing: a worker spends most of its time
# waiting, so twice the per-host connections (RemoteOptions.per_host, 32) keep every connection busy
# while other workers parse, and a batch over many hosts has 64 requests in flight.
URL_WORKERS = 64


def default_workers(sources: Sequence[str]) -> int:
    """Local probes are CPU work (a few per core); remote ones mostly wait on the network."""
    if any(is_url(s) for s in sources):
        return URL_WORKERS
    return max(1, min(4, os.cpu_count() or 1))


@contextlib.contextmanager
def shared_connections(sources: Sequence[str], options: CheckOptions) -> Iterator[CheckOptions]:
    """`options` with the run's connection pools when URLs are among `sources` (closed after)."""
    if options.remote.pools is not None or not any(is_url(s) for s in sources):
        yield options
        return
    shared, pools = sharing_connections(options)
    with pools:
        yield shared


def run_batch(
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    *,
    workers: int,
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    """Check every source; `on_result(index, result)` is called in completion order.

    The URLs among them share one set of kept-alive connections, closed when the batch ends.
    """
    with shared_connections(sources, options) as shared:
        return _run(sources, policy, shared, workers, on_result)


def _run(
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    workers: int,
    on_result: Callable[[int, Result], None] | None,
) -> list[Result]:
    collected = Collected(len(sources), on_result)

    def one(index: int) -> tuple[int, Result]:
        try:
            return index, check_one(sources[index], policy, options=options)
        except Exception as exc:  # a bug must cost one source, not the batch
            failure = Failure("internal", f"{type(exc).__name__}: {exc}")
            return index, Result(sources[index], "error", error=failure, backend=options.backend)

    if workers <= 1 or len(sources) <= 1:
        for index in range(len(sources)):
            collected.deliver(*one(index))
    else:
        # Here, not at the top: concurrent.futures loads logging, which one source never needs.
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preflight") as pool:
            # Submit a bounded window so a million-line --from list does not queue a million
            # futures at once.
            pending: set[Future[tuple[int, Result]]] = set()
            next_index = 0
            while next_index < len(sources) or pending:
                while next_index < len(sources) and len(pending) < workers * 4:
                    pending.add(pool.submit(one, next_index))
                    next_index += 1
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    collected.deliver(*future.result())
    return collected.results()


class Collected:
    """Results as they arrive, in any order: each is handed to `on_result(index, result)` at once
    and kept in its input slot. Shared by the thread pool here and the Dask fan-out (fanout/)."""

    def __init__(self, count: int, on_result: Callable[[int, Result], None] | None) -> None:
        self._slots: list[Result | None] = [None] * count
        self._on_result = on_result

    def deliver(self, index: int, result: Result) -> None:
        self._slots[index] = result
        if self._on_result is not None:
            self._on_result(index, result)

    def results(self) -> list[Result]:
        return [r for r in self._slots if r is not None]


class InOrder:
    """Hands results on in input order as soon as all earlier ones are in (for human output)."""

    def __init__(self, emit: Callable[[Result], None]) -> None:
        self._emit = emit
        self._waiting: dict[int, Result] = {}
        self._next = 0

    def __call__(self, index: int, result: Result) -> None:
        self._waiting[index] = result
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1
