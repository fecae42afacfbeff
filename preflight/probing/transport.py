"""The HTTP transport of a remote probe: one deadline per source, bounded retries, judged addresses.

`open_session` gives a requests Session that connects only to the addresses a UrlGate judged,
sleeps at most a few seconds for a Retry-After, and hangs up when the source's deadline passes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ResponseError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import connection as urllib3_connection
from urllib3.util.retry import Retry

from ..errors import NetworkError
from ..policy.url import UrlGate
from .options import RemoteOptions

_SHORTEST_TIMEOUT_S = 0.01  # a socket timeout of 0 would mean non-blocking, not "no time left"


class Deadline:
    """One wall-clock budget for a source. Use as a context manager: while inside, a watchdog
    thread shuts down every socket the probe opened once the time is up.

    urllib3's read timeout restarts with every byte received, so a server sending one byte a
    second never trips it; only closing the socket from outside ends such a read.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # our own dup()s, so their fds are never reused
        self._fired = False
        self._watchdog: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        self._watchdog = threading.Timer(self.remaining(), self._fire)
        self._watchdog.name = "preflight-deadline"
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog.join()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._ends

    def error(self) -> NetworkError:
        return NetworkError(
            f"the source took longer than the {self.seconds:g} s deadline "
            "(the server sends too slowly, or stalls)",
            kind="timeout",
        )

    def check(self) -> None:
        """Raise the deadline's NetworkError (kind timeout) if the time is up."""
        if self.expired:
            raise self.error()

    def limit(self, timeout: float | None) -> float:
        """`timeout` shortened to the time left (None: the time left)."""
        left = max(self.remaining(), _SHORTEST_TIMEOUT_S)
        return left if timeout is None else min(timeout, left)

    def timeouts(self, options: RemoteOptions) -> tuple[float, float]:
        """The (connect, read) timeouts for the next request, neither past the deadline."""
        return (self.limit(options.connect_timeout_s), self.limit(options.read_timeout_s))

    def track(self, sock: socket.socket) -> None:
        """Watch a new connection's socket; the watchdog shuts it down when the time is up."""
        # A dup shares the connection, and its fd stays ours even after urllib3 closes the
        # original (or TLS wraps it, which moves the fd to a new socket object).
        watched = sock.dup()
        with self._lock:
            fired = self._fired
            self._sockets.append(watched)
        if fired:
            _shut(watched)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # shutdown, not close: it wakes a recv blocked in another thread, which close does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Route:
    """Where one probe's connections may go: the gate's judged addresses, within the deadline."""

    def __init__(self, gate: UrlGate, deadline: Deadline) -> None:
        self.gate = gate
        self.deadline = deadline

    def connect(self, conn: HTTPConnection) -> socket.socket:
        if self.deadline.expired:
            raise ConnectTimeoutError(conn, f"the deadline passed before connecting to {conn.host}")
        addresses = self.gate.pinned(conn.host)
        if addresses is None:
            # Every URL and redirect hop is judged before we ask for it; reaching here is a bug,
            # and connecting to a host nobody judged is exactly what must never happen.
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
                self.deadline.track(sock)
                return sock
        assert error is not None  # addresses is never empty (UrlGate.addresses)
        raise error


class _PinnedHTTPConnection(HTTPConnection):
    """Connects to the judged address of its host; the Host header still names the host."""

    def __init__(self, *args: Any, route: _Route, **kwargs: Any) -> None:
        self._route = route
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        return self._route.connect(self)


class _PinnedHTTPSConnection(HTTPSConnection):
    """As above; TLS SNI and certificate checks still use the host name, not the address."""

    def __init__(self, *args: Any, route: _Route, **kwargs: Any) -> None:
        self._route = route
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        return self._route.connect(self)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedPoolManager(PoolManager):
    def __init__(self, route: _Route, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._route = route
        self.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        # Pool keys have a fixed set of fields, so the route rides in the connection kwargs.
        pool.conn_kw["route"] = self._route
        return pool


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, route: _Route, **kwargs: Any) -> None:
        self._route = route  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _PinnedPoolManager(
            self._route, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )


class _ProbeRetry(Retry):
    """urllib3's Retry, bounded: waits at most `wait_cap_s` and never past the deadline.

    A Retry-After longer than that is the server's final answer: the 5xx comes back to the
    caller (raise_on_status=False), which names the Retry-After, instead of sleeping for hours.
    """

    deadline: Deadline | None = None
    wait_cap_s: float = 5.0

    def new(self, **kw: Any) -> _ProbeRetry:
        retry = super().new(**kw)
        retry.deadline, retry.wait_cap_s = self.deadline, self.wait_cap_s
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


def open_session(options: RemoteOptions, gate: UrlGate, deadline: Deadline) -> requests.Session:
    """A Session for one probe: judged addresses only, bounded retries (refused connects, 5xx)."""
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
    retry.deadline, retry.wait_cap_s = deadline, options.retry_after_cap_s
    adapter = _PinnedAdapter(_Route(gate, deadline), max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "preflight (video pre-flight check; Range reader)"
    return session
