"""The life of a threaded HTTP server on loopback: bind, serve on a thread, stop, hang up clients.

MediaServer (preflight.serve) and Sandbox (preflight.sandbox) build on it and own only their routes.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

# How long an idle keep-alive connection or a blocked send may hold a handler thread: long enough
# for a test's pauses between requests, short enough that a forgotten connection does not linger.
SOCKET_TIMEOUT_S = 5.0

_Self = TypeVar("_Self", bound="LoopbackServer")
# Covariant, so a handler may narrow `server` to the server of its own owner class.
_Owner = TypeVar("_Owner", bound="LoopbackServer", covariant=True)


def hang_up(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client or the handler
        connection.shutdown(socket.SHUT_RDWR)


def serve_until_interrupt(server: LoopbackServer, announce: Callable[[], list[str]]) -> None:
    """Start `server`, print the lines `announce` gives, serve until Ctrl-C (`python -m` of a
    server, `preflight sandbox`). A Ctrl-C at any moment, even before the lines are out or while
    the server stops, ends it normally: the suppress is outside the server's context.
    """
    with contextlib.suppress(KeyboardInterrupt), server:
        for line in announce():
            print(line, flush=True)
        while True:
            time.sleep(3600)


class LoopbackHandler(BaseHTTPRequestHandler):
    """A keep-alive handler whose connection its owner can hang up on stop()."""

    protocol_version = "HTTP/1.1"  # keep-alive, so a client's Session reuses its connection
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S
    server: LoopbackHTTPServer[LoopbackServer]

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the owner keeps its own request log; stderr could leak what clients sent."""


class LoopbackHTTPServer(ThreadingHTTPServer, Generic[_Owner]):
    daemon_threads = True
    # Many client processes connect at once in the billing tests: a backlog of 5 drops SYNs.
    request_queue_size = 128
    block_on_close = False  # stop() must not wait for a handler stalled or sleeping out a delay

    def __init__(
        self, address: tuple[str, int], handler: type[LoopbackHandler], owner: _Owner
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's FQDN, which can take seconds offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.owner._is_routine(sys.exc_info()[1]):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Serves `handler` on loopback from a daemon thread; start() and stop() run once each."""

    _label: ClassVar[str]  # names the serve thread and the error of a second start()

    def __init__(self, host: str, port: int, handler: type[LoopbackHandler]) -> None:
        self._host = host
        self._lock = threading.Lock()  # also guards each subclass's own state
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Bound here, so base_url is known (and a busy port fails) before start().
        self._server = LoopbackHTTPServer((host, port), handler, self)

    def start(self: _Self) -> _Self:
        if self._stopping.is_set():
            raise RuntimeError(f"a stopped {self._label} cannot start again")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # how quickly stop() is noticed
                name=f"{self._label}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()  # wakes handlers waiting in _pause()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            hang_up(connection)  # wakes handlers blocked reading a keep-alive connection

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # The methods below are the handler's side of the server.

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; False if the server is stopping and the handler should give up."""
        return not self._stopping.wait(seconds)

    def _is_routine(self, error: BaseException | None) -> bool:
        """Whether a handler's uncaught error goes unreported: a client hanging up is routine."""
        return isinstance(error, OSError)

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            stopping = self._stopping.is_set()
        if stopping:
            hang_up(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
