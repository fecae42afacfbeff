"""The HTTP transport of a remote probe: one deadline per source, bounded retries, judged addresses.

`open_session` gives a requests Session that connects only to the addresses a Gate judged,
sleeps at most a few seconds for a Retry-After, and hangs up when the source's deadline passes.
Its connections come from `ConnectionPools`: the run's, shared by every probe of a batch (kept
alive between them, at most `per_host` to one host at once), or the probe's own.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ResponseError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import connection as urllib3_connection
from urllib3.util.retry import Retry

from ..errors import NetworkError
from .deadline import SHORTEST_TIMEOUT_S, Deadline
from .gate import Gate
from .options import DEFAULT_PER_HOST, MAX_PER_HOST, RemoteOptions

_MAX_POOLS = 64  # hosts whose idle connections are kept; the least recently used one is retired


class _Route:
    """Where one probe's connections may go: the gate's judged addresses, within the deadline."""

    def __init__(self, gate: Gate, deadline: Deadline) -> None:
        self.gate = gate
        self.deadline = deadline

    def judged(self, host: str) -> tuple[str, ...]:
        addresses = self.gate.pinned(host)
        if addresses is None:
            # Every URL and redirect hop is judged before we ask for it; reaching here is a bug,
            # and connecting to a host nobody judged is exactly what must never happen.
            raise NetworkError(f"refused to connect to {host}: its address was not judged")
        return addresses

    def connect(self, conn: HTTPConnection, pooled_for: tuple[str, ...]) -> socket.socket:
        if self.deadline.expired:
            raise ConnectTimeoutError(conn, f"the deadline passed before connecting to {conn.host}")
        addresses = self.judged(conn.host)
        if addresses != pooled_for:
            # A shared pool serves only probes whose gate judged exactly its addresses.
            raise NetworkError(f"refused to connect to {conn.host}: its address was not judged")
        own = conn.timeout if isinstance(conn.timeout, (int, float)) else None
        error: Exception | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, conn.port),
                    self.deadline.limit(own),
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except TimeoutError:
                error = ConnectTimeoutError(conn, f"connecting to {conn.host} timed out")
            except OSError as exc:
                error = NewConnectionError(conn, f"could not connect to {conn.host}: {exc}")
            else:
                _watch(conn, self.deadline, sock)
                return sock
        assert error is not None  # addresses is never empty (the gate's addresses)
        raise error


def _watch(conn: HTTPConnection, deadline: Deadline, sock: socket.socket) -> None:
    """Have `deadline` watch the connection's socket until the connection goes back to the pool
    or is closed; a connection its probe already watches is not watched twice."""
    current = getattr(conn, "preflight_watch", None)
    if current is not None:
        if current[0] is deadline:
            return
        _unwatch(conn)
    conn.preflight_watch = (deadline, deadline.track(sock))  # type: ignore[attr-defined]


def _unwatch(conn: HTTPConnection | None) -> None:
    current = getattr(conn, "preflight_watch", None)
    if current is not None:
        conn.preflight_watch = None  # type: ignore[union-attr]
        deadline, watched = current
        deadline.untrack(watched)


class _PinnedConnectionMixin:
    """Connects to the judged address of its host; the Host header still names the host (and
    for TLS, SNI and certificate checks still use the host name, not the address).

    `route` is the probe using the connection now: set by the pool before every request.
    """

    route: _Route | None = None

    def __init__(self, *args: Any, pooled_for: tuple[str, ...], **kwargs: Any) -> None:
        self._pooled_for = pooled_for
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        return _connect_for(self, self.route, self._pooled_for)  # type: ignore[arg-type]

    def close(self) -> None:
        _unwatch(self)  # type: ignore[arg-type]
        super().close()  # type: ignore[misc]


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


def _connect_for(
    conn: HTTPConnection, route: _Route | None, pooled_for: tuple[str, ...]
) -> socket.socket:
    if route is None:  # only a probe's own request may open a connection
        raise NetworkError(f"refused to connect to {conn.host}: no probe asked for it")
    return route.connect(conn, pooled_for)


def _route_of(retries: Any) -> _Route:
    route = getattr(retries, "route", None)
    if not isinstance(route, _Route):
        raise NetworkError("refused to connect: the request did not come from a probe")
    return route


class _PinnedPoolMixin:
    """A pool shared by probes: each request runs under its own probe's route and deadline."""

    pool: queue.LifoQueue[Any] | None
    _retired = False

    def retire(self) -> None:
        """Close the idle connections, and each busy one when it comes back, but stay usable: a
        probe may still be in the middle of a request on a pool the run no longer keeps."""
        self._retired = True
        slots = self.pool
        if slots is None:
            return
        idle = []
        with contextlib.suppress(queue.Empty):
            while True:
                idle.append(slots.get(block=False))
        for conn in idle:
            if conn is not None:
                conn.close()
            slots.put(None)  # the slot stays: the per-host bound still holds

    def revive(self) -> None:
        """Serve again as the pool of its key: connections now busy are kept when they return."""
        self._retired = False

    @property
    def busy(self) -> bool:
        """Some connection is out of the pool (in a probe's hands)."""
        slots = self.pool
        return slots is not None and slots.qsize() < slots.maxsize

    def _put_conn(self, conn: HTTPConnection | None) -> None:
        _unwatch(conn)  # back in the pool: no longer this probe's to cut at its deadline
        if self._retired and conn is not None:
            conn.close()
            conn = None
        super()._put_conn(conn)  # type: ignore[misc]

    def urlopen(self, method: str, url: str, *args: Any, **kw: Any) -> BaseHTTPResponse:
        # requests passes retries by keyword; urllib3's own retry passes it third after url.
        route = _route_of(kw["retries"] if "retries" in kw else args[2] if len(args) > 2 else None)
        # Waiting for one of the host's connections counts against the probe's deadline.
        kw["pool_timeout"] = route.deadline.remaining() + SHORTEST_TIMEOUT_S
        try:
            return super().urlopen(method, url, *args, **kw)  # type: ignore[misc,no-any-return]
        except EmptyPoolError:
            reason = ConnectTimeoutError(self, "every connection to the host stayed busy")
            raise MaxRetryError(self, url, reason) from None  # type: ignore[arg-type]

    def _make_request(self, conn: HTTPConnection, *args: Any, **kw: Any) -> BaseHTTPResponse:
        route = _route_of(kw.get("retries"))
        conn.route = route  # type: ignore[attr-defined]
        if conn.sock is not None:  # a kept-alive connection: this probe's watchdog watches it
            _watch(conn, route.deadline, conn.sock)
        try:
            return super()._make_request(conn, *args, **kw)  # type: ignore[misc,no-any-return]
        finally:
            conn.route = None  # type: ignore[attr-defined]


class _PinnedHTTPPool(_PinnedPoolMixin, HTTPConnectionPool):  # type: ignore[misc]
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(_PinnedPoolMixin, HTTPSConnectionPool):  # type: ignore[misc]
    ConnectionCls = _PinnedHTTPSConnection


class ConnectionPools:
    """The HTTP connections of one run: kept alive between its probes, closed at its end.

    One urllib3 pool per (scheme, host, port, TLS settings, judged addresses), so a connection
    is reused only by a probe whose own gate judged exactly the addresses it went to. A pool
    opens at most `per_host` connections; a probe waits (within its deadline) for a free one.
    Thread-safe: the probes of a batch share it.
    """

    def __init__(self, per_host: int = DEFAULT_PER_HOST, *, max_pools: int = _MAX_POOLS) -> None:
        if not 1 <= per_host <= MAX_PER_HOST or max_pools < 1:
            raise ValueError(f"per_host must be 1 to {MAX_PER_HOST}, max_pools 1 or more")
        self.per_host = per_host
        self._max_pools = max_pools
        self._lock = threading.Lock()
        self._closed = False
        self._pools: OrderedDict[Any, HTTPConnectionPool] = OrderedDict()  # least recent first
        # Pools retired while a probe still held one of their connections, by key: if the key
        # comes back before they are idle, the same pool serves it again, so the host never has
        # more than per_host connections from a retired pool and its replacement together.
        self._retired_busy: dict[Any, HTTPConnectionPool] = {}

    def pool(self, key: Any, make: Callable[[], HTTPConnectionPool]) -> HTTPConnectionPool:
        """The pool for `key`, made by `make()` the first time."""
        with self._lock:
            if self._closed:
                raise NetworkError("the run's connections are closed", kind="network")
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            pool = self._retired_busy.pop(key, None)
            if isinstance(pool, _PinnedPoolMixin):
                pool.revive()
            else:
                pool = make()
            self._pools[key] = pool
            if len(self._pools) > self._max_pools:
                retired_key, retired = self._pools.popitem(last=False)
                self._retired_busy = {
                    k: p
                    for k, p in self._retired_busy.items()
                    if isinstance(p, _PinnedPoolMixin) and p.busy
                }
                self._retired_busy[retired_key] = retired
                if isinstance(retired, _PinnedPoolMixin):
                    # Under the lock, so that a revive() of the same pool cannot come first.
                    retired.retire()
        return pool

    def close(self) -> None:
        """Close every connection; for the end of the run, when no probe is using them."""
        with self._lock:
            self._closed = True
            pools = [*self._pools.values(), *self._retired_busy.values()]
            self._pools.clear()
            self._retired_busy.clear()
        for pool in pools:
            pool.close()

    def __enter__(self) -> ConnectionPools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PinnedPoolManager(PoolManager):
    """One probe's view of the run's pools: it picks the pool of the addresses its gate judged."""

    def __init__(self, route: _Route, pools: ConnectionPools, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "maxsize": pools.per_host, "block": True})
        self._route = route
        self._shared = pools
        self.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def connection_from_pool_key(
        self, pool_key: Any, request_context: dict[str, Any]
    ) -> HTTPConnectionPool:
        scheme, host, port = (
            request_context["scheme"],
            request_context["host"],
            request_context["port"],
        )
        addresses = self._route.judged(host)

        def make() -> HTTPConnectionPool:
            pool = self._new_pool(scheme, host, port, request_context)
            # Pool keys have a fixed set of fields, so the addresses ride in the connection kwargs.
            pool.conn_kw["pooled_for"] = addresses
            return pool

        return self._shared.pool((pool_key, addresses), make)

    def clear(self) -> None:
        """The pools are the run's: a Session closing does not close them."""


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, route: _Route, pools: ConnectionPools, **kwargs: Any) -> None:
        # Before super().__init__, which builds the pool manager.
        self._route, self._pools = route, pools
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _PinnedPoolManager(
            self._route, self._pools, num_pools=connections, **pool_kwargs
        )


class _ProbeRetry(Retry):
    """urllib3's Retry, bounded: waits at most `wait_cap_s` and never past the deadline.

    A Retry-After longer than that is the server's final answer: the 5xx comes back to the
    caller (raise_on_status=False), which names the Retry-After, instead of sleeping for hours.
    """

    deadline: Deadline | None = None
    wait_cap_s: float = 5.0
    route: _Route | None = None  # the probe's, for the shared pools: judged addresses, deadline

    def new(self, **kw: Any) -> _ProbeRetry:
        retry = super().new(**kw)
        retry.deadline, retry.wait_cap_s, retry.route = self.deadline, self.wait_cap_s, self.route
        return retry

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:  # an unreadable Retry-After is no instruction: back off as usual
            return None

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> _ProbeRetry:
        left = self.deadline.remaining() if self.deadline is not None else float("inf")
        if left <= 0:
            reason = error or ResponseError("the deadline passed")
            raise MaxRetryError(_pool, url, reason)  # type: ignore[arg-type]
        if response is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > min(self.wait_cap_s, left):
                raise MaxRetryError(_pool, url, ResponseError("Retry-After is too long"))  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = self.get_backoff_time()
        left = self.deadline.remaining() if self.deadline is not None else wait
        time.sleep(max(0.0, min(wait, self.wait_cap_s, left)))


def open_session(
    options: RemoteOptions, gate: Gate, deadline: Deadline, pools: ConnectionPools
) -> requests.Session:
    """A Session for one probe: judged addresses only, bounded retries (refused connects, 5xx),
    connections from `pools` (the run's, or the probe's own)."""
    session = requests.Session()
    # Proxies and .netrc from the environment would bypass the judged addresses, or add secrets;
    # a CA bundle named there is still honoured, as requests would.
    session.trust_env = False
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    retry = _ProbeRetry(
        total=None,
        connect=options.retries,
        read=0,
        status=options.retries,
        other=0,
        redirect=False,
        backoff_factor=0.25,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    route = _Route(gate, deadline)
    retry.deadline, retry.wait_cap_s, retry.route = deadline, options.retry_after_cap_s, route
    adapter = _PinnedAdapter(route, pools, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "preflight (video pre-flight check; Range reader)"
    return session
