"""Graceful drain on SIGTERM: not ready at once, keep serving briefly, then let uvicorn finish in-flight work.

Kubernetes and load balancers take a moment to stop routing to a terminating pod; answering 503 on
readiness while still serving for `shutdown_delay` avoids dropping the requests they still send.
Uvicorn then stops accepting connections and waits up to its graceful timeout for in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from serving.state import ServerState
from serving.uvicorn_hooks import http_protocol_factory, server_behind_sigterm

log = logging.getLogger("serving")
PLUG_WAIT_SECONDS = 2.0  # longest the drain waits for its plug connection (the initial SYN retransmit is 1 s)


def install_drain_handler(state: ServerState, shutdown_delay: float, drain_timeout: float = 0.0) -> bool:
    """Wrap uvicorn's SIGTERM handler; call during lifespan start-up. False when not under uvicorn's signals."""
    server = server_behind_sigterm()
    if server is None:
        return False
    loop = asyncio.get_running_loop()

    def stop() -> None:
        stop_listening(server, loop)
        # Setting should_exit (rather than calling uvicorn's handler) avoids re-raising SIGTERM after
        # shutdown, so the process exits 0.
        server.should_exit = True

    def on_sigterm(_signal: int, _frame: FrameType | None) -> None:
        if state.draining:
            # A second SIGTERM (a supervisor repeating itself) must not cut the drain short: that
            # closes keep-alive connections a client may be sending on. SIGINT twice, or SIGKILL, forces.
            log.info("SIGTERM again: already draining")
            return
        state.draining = True
        state.drain_deadline = time.monotonic() + shutdown_delay + drain_timeout
        log.info("SIGTERM: draining; not ready, stopping in %.1f s", shutdown_delay)
        loop.call_soon_threadsafe(loop.call_later, shutdown_delay, stop)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def stop_listening(server: uvicorn.Server, loop: asyncio.AbstractEventLoop) -> int:
    """Stop listening without resetting connections the kernel has already completed.

    Closing a listening socket resets the connections queued in its backlog, whose clients have
    sent their requests (measured: one lost request per busy client). Instead: stop uvicorn's
    accepting, accept what is queued and serve it, then shut the socket down for every process that
    shares it, so new connections are refused (never sent, safe to retry). Returns how many queued
    connections were taken over.
    """
    protocol = http_protocol_factory(server)
    taken = 0
    for listening in getattr(server, "servers", []):
        sockets = [socket.socket(fileno=os.dup(s.fileno())) for s in listening.sockets or ()]
        listening.close()
        for sock in sockets:
            with _one_drainer(sock):
                # Workers share the listening socket: the first one shuts it down for all; the
                # others find it no longer listening (listen() again would reopen it).
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    taken += _drain(sock, loop, protocol)
            sock.close()
    if taken:
        log.info("took over %d queued connection(s) before closing the port", taken)
    return taken


def _drain(sock: socket.socket, loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol]) -> int:
    """Serve what is queued on a listening socket, then shut it down for everyone.

    Shutting a listening socket down resets the connections still in its accept queue. So the queue
    is shrunk to one entry and filled with a connection of our own (the plug): once the plug's
    handshake is complete, the queue holds the plug and nothing else, the kernel drops new SYNs
    (those clients retry and meet the closed port: refused, never sent), and the shutdown resets
    only the plug. Clients that got in before the plug are accepted and served; after each one a
    new plug is sent, so it wins the freed entry. Bounded by PLUG_WAIT_SECONDS.
    """
    sock.setblocking(False)
    taken = 0
    try:
        sock.listen(0)
        plug = _plug(sock)
    except OSError:
        plug = None
    deadline = time.monotonic() + PLUG_WAIT_SECONDS
    while time.monotonic() < deadline:
        if plug is not None and _connected(plug):
            break  # the queue is full with the plug alone
        try:
            connection, peer = sock.accept()
        except BlockingIOError:
            if plug is None:
                break  # no plug: what was queued is served
            select.select([sock], [plug], [], 0.01)
            continue
        except OSError:
            break
        if plug is not None and peer == plug.getsockname():
            connection.close()  # the plug came out of the queue: send another
        else:
            connection.setblocking(False)
            loop.create_task(loop.connect_accepted_socket(protocol, connection))
            taken += 1
        if plug is not None:
            plug.close()
            plug = _plug(sock)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # Linux: stops listening in every process holding the socket
    if plug is not None:
        plug.close()
    return taken


@contextlib.contextmanager
def _one_drainer(sock: socket.socket) -> Iterator[None]:
    """Serialise the workers' drains of one shared socket: two plugs in one queue would be accepted
    by the wrong worker. A lock file per port in the temporary directory; without one, no lock."""
    port = sock.getsockname()[1] if sock.family in (socket.AF_INET, socket.AF_INET6) else 0
    path = os.path.join(tempfile.gettempdir(), f"mlserve-drain-{os.getppid()}-{port}.lock")
    try:
        lock = open(path, "a")  # noqa: SIM115 - held across the drain
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _plug(sock: socket.socket) -> socket.socket:
    plug = socket.socket(sock.family, socket.SOCK_STREAM)
    plug.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        plug.connect(_loopback(sock))
    return plug


def _connected(plug: socket.socket) -> bool:
    """The plug's handshake is complete (so it sits in the accept queue)."""
    if not select.select([], [plug], [], 0)[1]:
        return False
    return plug.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def _loopback(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port
