"""`check --dask ADDRESS`: connect to a Dask scheduler (or start a LocalCluster), wait for a worker,
and hand the sources to fanout/run.py, which sends them out and judges what comes back.

With run.py, the only module that imports `distributed`, and only when called: `import preflight`
and a plain `preflight check` never load it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError
from ..pipeline import CheckOptions
from ..policy import Policy
from ..verdict import Result

if TYPE_CHECKING:
    from distributed import Client

    from ..cache import ProbeCache

DEFAULT_CONNECT_TIMEOUT_S = 10.0
# The most a run waits for the scheduler to have a worker, at the start (--dask-timeout) and
# whenever all of them have left: a scheduler without workers would otherwise wait forever.
DEFAULT_TIMEOUT_S = 60.0
# Dask's own knob for the connect timeout; when the user set it, it wins over ours.
CONNECT_TIMEOUT_ENV = "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"
# What a scheduler address may start with: Dask's networked transports (inproc:// is this
# process only; anything else would make Client look for a plugin, then time out noisily).
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


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
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_lost: Callable[[str], None] | None = None,
    cache: ProbeCache | None = None,
) -> list[Result]:
    """Check every source on the cluster; `on_result(index, result)` in completion order.

    Raises ClusterError (before anything is checked) when the scheduler cannot be reached or no
    worker joins it within `timeout_s`. A scheduler lost mid-run (or left without workers for
    `timeout_s`) makes every unfinished source an `error` of kind `worker`; `on_lost` gets one
    line saying so and how many were checked.
    """
    from .run import fan_out

    scheduler, local_workers = parse_address(address)
    try:
        import distributed  # noqa: F401  (only to say what is missing)
    except ImportError:
        raise ClusterError(
            "--dask needs Dask's distributed: pip install 'preflight[dask]'"
        ) from None
    with _connect(scheduler, local_workers, timeout_s) as client:
        results, lost = fan_out(
            client,
            scheduler or address,
            sources,
            policy,
            options,
            on_result=on_result,
            timeout_s=timeout_s,
            cache=cache,
        )
    if lost and on_lost is not None:
        on_lost(lost)
    return results


@contextmanager
def _connect(scheduler: str | None, local_workers: int, timeout_s: float) -> Iterator[Client]:
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
    _check_address(scheduler)
    started = time.monotonic()
    connect_s = min(DEFAULT_CONNECT_TIMEOUT_S, timeout_s)
    timeout: Any = os.environ.get(CONNECT_TIMEOUT_ENV) or f"{connect_s:g}s"
    with _quiet_distributed():  # its retry and reconnect logs would bury our one line
        yield from _connected(scheduler, timeout, timeout_s, started)


def _connected(scheduler: str, timeout: Any, timeout_s: float, started: float) -> Iterator[Client]:
    from distributed import Client

    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ClusterError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout}: {reason}"
        ) from None
    with client:
        _wait_for_a_worker(client, scheduler, timeout_s, started)
        yield client


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Only CRITICAL from Dask's loggers while we talk to its scheduler (restored after): a lost
    scheduler otherwise prints reconnect attempts and tracebacks from the Client's own tasks.
    Dask configures some child loggers (distributed.client, ...) with levels of their own."""
    names = ["distributed"] + [
        name for name in logging.root.manager.loggerDict if name.startswith("distributed.")
    ]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _check_address(scheduler: str) -> None:
    """Refuse an address Dask cannot dial, before a Client exists: a Client made from one waits
    out its timeout and then hangs or complains in its finalizer."""
    from distributed.comm.addressing import parse_address as split_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = split_address(scheduler)
        if scheme not in _SCHEMES:
            raise ValueError(f"unknown scheme {scheme}://")
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise ClusterError(
            f"--dask {scheduler}: not a scheduler address ({exc}); "
            "give tcp://host:8786 or local[:N]"
        ) from None


def _wait_for_a_worker(client: Client, scheduler: str, timeout_s: float, started: float) -> None:
    try:
        client.wait_for_workers(1, timeout=max(timeout_s - (time.monotonic() - started), 0.1))
    except (TimeoutError, OSError):
        try:
            joined = len(client.scheduler_info()["workers"])
        except Exception:
            joined = 0
        raise ClusterError(
            f"no Dask worker joined the scheduler at {scheduler} within the "
            f"{timeout_s:g} s --dask-timeout ({joined} workers joined): start workers with "
            f"`dask worker {scheduler}`, or wait longer with --dask-timeout S"
        ) from None
