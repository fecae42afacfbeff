"""Checking many sources at once: a thread pool, results handed over as they finish and returned
in input order. One bad source never stops the batch.

Threads suffice: MediaInfo runs in C with the GIL released, ffprobe and HTTP wait on I/O.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from .pipeline import CheckOptions, check_one, sharing_connections
from .policy import Policy
from .sources import is_url
from .verdict import Failure, Result

if TYPE_CHECKING:
    from .cache import ProbeCache
    from .pipeline import KlingLookup
    from .probing.transport import ConnectionPools

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
def shared_connections(
    sources: Sequence[str], options: CheckOptions
) -> Iterator[ConnectionPools | None]:
    """The run's connection pools when URLs are among `sources` (closed after), else None."""
    if not any(is_url(s) for s in sources):
        yield None
        return
    with sharing_connections(options) as pools:
        yield pools


def run_batch(
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    *,
    workers: int,
    on_result: Callable[[int, Result], None] | None = None,
    cache: ProbeCache | None = None,
    pools: ConnectionPools | None = None,
    kling: KlingLookup | None = None,
) -> list[Result]:
    """Check every source; `on_result(index, result)` is called in completion order.

    The URLs among them share one set of kept-alive connections (`pools`, else the batch's own,
    closed when it ends). `cache` (an open ProbeCache) is asked and filled for every source.
    The caller closes what it passed.
    """
    if pools is not None:
        return _run(sources, policy, options, workers, on_result, cache, pools, kling)
    with shared_connections(sources, options) as shared:
        return _run(sources, policy, options, workers, on_result, cache, shared, kling)


def _run(
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    workers: int,
    on_result: Callable[[int, Result], None] | None,
    cache: ProbeCache | None,
    pools: ConnectionPools | None,
    kling: KlingLookup | None = None,
) -> list[Result]:
    collected = Collected(len(sources), on_result)

    def one(index: int) -> tuple[int, Result]:
        try:
            return index, check_one(
                sources[index], policy, options=options, cache=cache, pools=pools, kling=kling
            )
        except Exception as exc:  # a bug must cost one source, not the batch
            failure = Failure("internal", f"{type(exc).__name__}: {exc}")
            return index, Result(sources[index], "error", error=failure, backend=options.backend)

    if workers <= 1 or len(sources) <= 1:
        for index in range(len(sources)):
            collected.deliver(*one(index))
    else:
        # Here, not at the top: concurrent.futures loads logging, which one source never needs.
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        turns = HostTurns(sources, options.remote.per_host)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preflight") as pool:
            # At most `workers` sources are handed out at once, each only when a worker is free,
            # so the choice of the next one is made when it can start (see HostTurns).
            pending: dict[Future[tuple[int, Result]], int] = {}
            while True:
                while len(pending) < workers:
                    start = turns.next()
                    if start is None:
                        break
                    pending[pool.submit(one, start)] = start
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    turns.finished(pending.pop(future))
                    collected.deliver(*future.result())
    return collected.results()


class HostTurns:
    """Which source a free worker takes next: the first in input order whose host is below its
    `per_host` bound (local files have no host, so no bound).

    A URL whose host already has `per_host` probes running would only wait for one of that
    host's connections, holding a worker that another host could use: such URLs wait here
    instead, in their input order, and go as soon as their host has room. So a host that stalls
    occupies at most `per_host` workers, and every other host proceeds at once.
    """

    def __init__(self, sources: Sequence[str], per_host: int) -> None:
        self._sources = sources
        self._per_host = per_host
        self._cursor = 0  # the first source never looked at
        self._running: dict[str, int] = {}  # host -> probes running
        self._waiting: dict[str, deque[int]] = {}  # host -> sources held back, input order
        self._host_of: dict[int, str] = {}  # running source -> its host

    def next(self) -> int | None:
        """The next source to start, or None when every one left waits for a busy host."""
        ready = [queue[0] for host, queue in self._waiting.items() if self._has_room(host)]
        if ready:
            index = min(ready)
            host = _host_key(self._sources[index])
            queue = self._waiting[host]
            queue.popleft()
            if not queue:
                del self._waiting[host]
            return self._start(index, host)
        while self._cursor < len(self._sources):
            index = self._cursor
            self._cursor += 1
            host = _host_key(self._sources[index])
            if not host or self._has_room(host):
                return self._start(index, host)
            self._waiting.setdefault(host, deque()).append(index)
        return None

    def finished(self, index: int) -> None:
        host = self._host_of.pop(index, "")
        if host:
            self._running[host] -= 1

    def _has_room(self, host: str) -> bool:
        return self._running.get(host, 0) < self._per_host

    def _start(self, index: int, host: str) -> int:
        if host:
            self._running[host] = self._running.get(host, 0) + 1
            self._host_of[index] = host
        return index


def _host_key(source: str) -> str:
    """scheme://host:port of a URL (the unit the connection pools bound), '' for a file."""
    if not is_url(source):
        return ""
    from urllib.parse import urlsplit  # here: it loads ipaddress, which a local check never needs

    try:
        parts = urlsplit(source)
        port = parts.port
    except ValueError:
        return ""  # refused by the url rules before any connection: no host to wait for
    scheme = parts.scheme.lower()
    port = port or (443 if scheme == "https" else 80)  # as the pools count it: :80 is no other host
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


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
