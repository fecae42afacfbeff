"""`check --dask ADDRESS`: connect to a Dask scheduler (or start a LocalCluster), send each source
by name to a worker, judge and cache what comes back here, deliver results as batch.run_batch does.

The only module that imports `distributed`, and only when called: `import preflight` and a plain
`preflight check` never load it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..batch import Collected
from ..errors import ClusterError
from ..pipeline import CheckOptions, FileProbe, judge_file
from ..policy import Policy
from ..policy.url import is_url, redact_url
from ..verdict import Failure, Result
from .task import check_url_on_worker, probe_on_worker

if TYPE_CHECKING:
    from distributed import Client, Future

DEFAULT_CONNECT_TIMEOUT_S = 10.0
# Dask's own knob for the connect timeout; when the user set it, it wins over ours.
CONNECT_TIMEOUT_ENV = "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"
# A task whose worker dies is put back by the scheduler (up to its allowed-failures, 3 by
# default); `retries` adds re-runs for a task that raised on a worker (ours never do by design,
# but a worker-side import or pickling failure would).
RETRIES = 2
TASK_PREFIX = "preflight-probe"  # every task key starts so: a worker's log shows what it ran


def parse_address(address: str) -> tuple[str | None, int]:
    """`local` / `local:N` -> (None, N workers); anything else is a scheduler address (addr, 0)."""
    if address == "local" or address.startswith("local:"):
        count = address.partition(":")[2]
        if not count:
            return None, max(1, os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(f"--dask {address}: the number of local workers must be 1 or more")
        return None, int(count)
    if not address.strip():
        raise ClusterError("--dask needs a scheduler address (tcp://host:8786) or local[:N]")
    return address, 0


def run_on_cluster(
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    *,
    address: str,
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    """Check every source on the cluster; `on_result(index, result)` in completion order.

    Raises ClusterError (before anything is checked) when the scheduler cannot be reached.
    """
    scheduler, local_workers = parse_address(address)
    try:
        import distributed  # noqa: F401  (only to say what is missing)
    except ImportError:
        raise ClusterError(
            "--dask needs Dask's distributed: pip install 'preflight[dask]'"
        ) from None
    with _connect(scheduler, local_workers) as client:
        return _fan_out(client, sources, policy, options, on_result)


@contextmanager
def _connect(scheduler: str | None, local_workers: int) -> Iterator[Client]:
    from distributed import Client, LocalCluster

    if scheduler is None:
        # Processes, not threads: the point of local:N is probing past the GIL.
        cluster = LocalCluster(
            n_workers=local_workers,
            threads_per_worker=1,
            processes=True,
            # ":0", not None: None still asks for 8787 and warns when another cluster holds it.
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        try:
            with Client(cluster, set_as_default=False) as client:
                yield client
        finally:
            cluster.close()
        return
    from distributed.comm.addressing import parse_address as split_address
    from distributed.comm.addressing import parse_host_port

    # Checked before a Client exists: a Client made from a bad address hangs in its finalizer.
    try:
        scheme, location = split_address(scheduler)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise ClusterError(
            f"--dask {scheduler}: not a scheduler address ({exc}); "
            "give tcp://host:8786 or local[:N]"
        ) from None
    timeout_s: Any = os.environ.get(CONNECT_TIMEOUT_ENV) or f"{DEFAULT_CONNECT_TIMEOUT_S:g}s"
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its retry warnings would bury our one line
    try:
        client = Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ClusterError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout_s}: {reason}"
        ) from None
    finally:
        quiet.setLevel(level)
    with client:
        yield client


def _fan_out(
    client: Client,
    sources: Sequence[str],
    policy: Policy,
    options: CheckOptions,
    on_result: Callable[[int, Result], None] | None,
) -> list[Result]:
    from distributed import as_completed

    collected = Collected(len(sources), on_result)
    cache = options.cache
    remote_options = replace(options, cache=None)  # the cache is a file here, never shipped
    batch_id = uuid.uuid4().hex[:12]
    # index and the cache key computed at submit time, by task key
    waiting: dict[str, tuple[int, str | None]] = {}
    running = as_completed(loop=client.loop)
    # A bounded window, as in run_batch: a million-line --from list is not a million futures.
    window = max(8, 4 * sum(client.nthreads().values()))

    def submit(index: int) -> None:
        name = sources[index]
        task_key = f"{TASK_PREFIX}-{batch_id}-{index}"
        if is_url(name):
            future = client.submit(
                check_url_on_worker, name, policy, remote_options, key=task_key, retries=RETRIES
            )
            waiting[task_key] = (index, None)
        else:
            cache_key = cache.file_key(name, options.backend) if cache is not None else None
            hit = cache.get(cache_key) if cache is not None else None
            if hit is not None:  # facts known here: nothing to send
                cached = FileProbe(name, hit[0], hit[1], None, 0.0, cached=True)
                collected.deliver(index, judge_file(cached, policy, options))
                return
            future = client.submit(
                probe_on_worker, name, remote_options, key=task_key, retries=RETRIES
            )
            waiting[task_key] = (index, cache_key)
        running.add(future)

    def collect(future: Future) -> None:
        index, cache_key = waiting.pop(future.key)
        try:
            value = future.result()
        except Exception as exc:  # KilledWorker past the scheduler's allowed failures, a lost task
            name = sources[index]
            shown = redact_url(name) if is_url(name) else name
            failure = Failure("worker", f"the Dask task failed: {type(exc).__name__}: {exc}")
            collected.deliver(index, Result(shown, "error", error=failure, backend=options.backend))
            return
        finally:
            future.release()
        if isinstance(value, FileProbe):
            if cache is not None and value.facts is not None:
                cache.put(cache_key, value.facts, value.disagreements)
            collected.deliver(index, judge_file(value, policy, options))
            return
        result: Result = value
        info = result.remote
        if cache is not None and info is not None and result.facts is not None:
            url_key = cache.url_key(
                info.final_url, info.etag, info.last_modified, info.size_bytes, options.backend
            )
            cache.put(url_key, result.facts, result.disagreements)
        collected.deliver(index, result)

    for index in range(len(sources)):
        submit(index)
        while running.count() >= window:
            collect(next(running))
    for future in running:
        collect(future)
    return collected.results()
