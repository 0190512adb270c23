"""The listening socket, bound before anything is announced, and a supervisor that closes it first.

Multi-worker shutdown, measured: uvicorn's parent keeps its copy of the shared listening socket until
every worker has exited, so for that last second the kernel completes handshakes nobody will
accept; when the parent exits those connections are reset after their requests were sent, and the
clients cannot tell whether a POST was processed. Closing the parent's copy as soon as it is told to
stop leaves the socket to the workers: they keep serving through their drain delay, then close it,
after which new connections are refused before anything is sent (safe to retry).
"""

from __future__ import annotations

import errno
import socket

from uvicorn.supervisors.multiprocess import Multiprocess


class ListenError(Exception):
    """The port cannot be listened on; the message says why and what to do."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        where = f"{host}:{port}"
        if error.errno == errno.EADDRINUSE:
            raise ListenError(
                f"cannot listen on {where}: the port is in use by another process; stop it or choose another "
                "port (--port, SERVING_PORT)"
            ) from None
        if error.errno == errno.EACCES:
            raise ListenError(
                f"cannot listen on {where}: permission denied (ports below 1024 need privileges)"
            ) from None
        raise ListenError(f"cannot listen on {where}: {error.strerror} (--host, --port)") from None
    sock.set_inheritable(True)  # the workers are spawned processes and inherit it
    return sock


class ClosingMultiprocess(Multiprocess):
    """uvicorn's supervisor, closing its listening sockets the moment it is told to stop."""

    def _close_listeners(self) -> None:
        for sock in self.sockets:
            sock.close()

    def handle_term(self) -> None:
        self._close_listeners()
        super().handle_term()

    def handle_int(self) -> None:
        self._close_listeners()
        super().handle_int()
