"""Graceful drain on SIGTERM: not ready at once, keep serving briefly, then let uvicorn finish in-flight work.

Kubernetes and load balancers take a moment to stop routing to a terminating pod; answering 503 on
readiness while still serving for `shutdown_delay` avoids dropping the requests they still send.
Uvicorn then stops accepting connections and waits up to its graceful timeout for in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from serving.front import ServerState

log = logging.getLogger("serving")


def install_drain_handler(state: ServerState, shutdown_delay: float) -> bool:
    """Wrap uvicorn's SIGTERM handler; call during lifespan start-up. False when not under uvicorn's signals."""
    previous = signal.getsignal(signal.SIGTERM)
    server = getattr(previous, "__self__", None)
    if not isinstance(server, uvicorn.Server):
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
    protocol = functools.partial(
        server.config.http_protocol_class,
        config=server.config,
        server_state=server.server_state,
        app_state=server.lifespan.state,
    )
    taken = 0
    for listening in getattr(server, "servers", []):
        sockets = [socket.socket(fileno=os.dup(s.fileno())) for s in listening.sockets or ()]
        listening.close()
        for sock in sockets:
            taken += _drain(sock, loop, protocol)
            sock.close()
    if taken:
        log.info("took over %d queued connection(s) before closing the port", taken)
    return taken


def _drain(sock: socket.socket, loop: asyncio.AbstractEventLoop, protocol: functools.partial) -> int:
    """Serve what is queued on a listening socket, then shut it down for everyone.

    With the accept queue shrunk to one and a connection of our own in it (the plug), the kernel
    drops new SYNs (the client retries and then meets the closed port) instead of completing
    handshakes that the shutdown would reset. Everything queued before the plug is served.
    """
    sock.setblocking(False)
    plug = None
    with contextlib.suppress(OSError):
        sock.listen(0)
        plug = socket.socket(sock.family, socket.SOCK_STREAM)
        plug.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            plug.connect(_loopback(sock))
    plug_address = plug.getsockname() if plug is not None else None
    taken = 0
    while True:
        try:
            connection, peer = sock.accept()
        except OSError:
            break
        if peer == plug_address:
            connection.close()
            break
        connection.setblocking(False)
        loop.create_task(loop.connect_accepted_socket(protocol, connection))
        taken += 1
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # Linux: stops listening in every process holding the socket
    if plug is not None:
        plug.close()
    return taken


def _loopback(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port
