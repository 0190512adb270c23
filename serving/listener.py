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
import multiprocessing
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger

from serving.prefork import start_method

if TYPE_CHECKING:
    from multiprocessing.synchronize import Semaphore

    from uvicorn.config import Config


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


# A worker that has not come up in this long no longer holds back the next one (it may never come up).
STAGGER_TIMEOUT_SECONDS = 5.0


def _caught() -> set[signal.Signals]:
    """The signals this process handles in Python (the supervisor's: uvicorn queues them for its loop)."""
    return {
        number
        for number in signal.valid_signals()
        if callable(signal.getsignal(number)) and signal.getsignal(number) is not signal.default_int_handler
    }


def _forked(target: Any, kwargs: dict[str, Any], caught: set[signal.Signals], mask: set[signal.Signals]) -> None:
    """A forked worker's start: the signal handlers a spawned worker would have, not the supervisor's
    (which would only queue a SIGTERM for a loop this process does not run), then uvicorn's start.
    Those signals were blocked across the fork: one that came meanwhile is delivered now, to the
    default handler, as it would have been to a spawned worker."""
    for number in caught:
        signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    target(**kwargs)


class ForkedProcess(Process):
    """uvicorn's worker process, forked instead of spawned (serving/prefork.py): the same target and
    arguments (uvicorn's `subprocess_started`, from the spawn process it builds and never starts).
    uvicorn's own replacement of a dead worker still spawns it."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self._spawned = self.process

    def start(self) -> None:
        caught = _caught()
        # Blocked from before the fork until the child has its own handlers: a SIGTERM between the two
        # (the supervisor stopping as it starts a worker) would otherwise go to the copy of the
        # supervisor's queue in the child, which nobody reads, and the worker would serve on.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, caught)
        try:
            self.process = multiprocessing.get_context("fork").Process(  # type: ignore[assignment]
                target=_forked,
                args=(self._spawned._target, self._spawned._kwargs, caught, mask),  # type: ignore[attr-defined]
            )
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class ClosingMultiprocess(Multiprocess):
    """uvicorn's supervisor, closing its listening sockets the moment it is told to stop.

    It starts at most `at_once` workers at a time (one a CPU): each worker released `up` once it is
    ready to serve (serving/worker.py), and the next starts then. Workers starting together share the
    cores their imports take, so with more workers than CPUs all of them came up late; one a core, the
    first answer comes after one worker's start, and the last a little later than before. `start()` starts
    the first of them before `run()`, while the parent still waits for the model check."""

    def __init__(self, config: Config, sockets: list[socket.socket], at_once: int, up: Semaphore) -> None:
        super().__init__(config, sockets)
        self.at_once = max(1, at_once)
        self.up = up
        self._last_start = 0.0

    def _start_one(self) -> None:
        forked = start_method() == "fork"
        process = ForkedProcess(self.config, self.sockets) if forked else Process(self.config, self.sockets)
        process.start()
        self.processes.append(process)
        self._last_start = time.monotonic()

    def _pending(self) -> int:
        return self.processes_num - len(self.processes)

    def start(self, count: int | None = None) -> None:
        """Start workers up to `count` of them (as many as may start at once by default)."""
        while self._pending() > 0 and len(self.processes) < (self.at_once if count is None else count):
            self._start_one()

    def init_processes(self) -> None:
        self.start()

    def abandon(self) -> None:
        """Stop the workers started so far, quietly (they are importing or waiting, serving nothing)."""
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.process.join()
        for sock in self.sockets:
            sock.close()

    def run(self) -> None:
        logger.info(f"Started parent process [{os.getpid()}]")
        self.init_processes()
        while not self.should_exit.is_set():
            if self._pending() > 0:
                if self.up.acquire(timeout=0.5) or time.monotonic() - self._last_start > STAGGER_TIMEOUT_SECONDS:
                    self._start_one()
            else:
                self.should_exit.wait(0.5)
            self.handle_signals()
            self.keep_subprocess_alive()
        self.terminate_all()
        self.join_all()
        logger.info(f"Stopping parent process [{os.getpid()}]")

    def _close_listeners(self) -> None:
        for sock in self.sockets:
            sock.close()

    def handle_term(self) -> None:
        self._close_listeners()
        super().handle_term()

    def handle_int(self) -> None:
        self._close_listeners()
        super().handle_int()

    # uvicorn restarts every worker on SIGHUP and stops one on SIGTTOU. Here a worker that stops drains
    # and shuts the listening socket down for all of them (serving/drain.py: so that a stopping server
    # refuses new connections rather than resetting them), which would leave the rest deaf. Neither
    # is done, and the log says what to do instead.
    def handle_hup(self) -> None:
        logger.warning("Received SIGHUP: ignored; to reload, restart the server (roll the deployment)")

    def handle_ttou(self) -> None:
        logger.warning("Received SIGTTOU: ignored; to run fewer workers, restart the server with fewer (--workers)")

    def handle_ttin(self) -> None:
        logger.info("Received SIGTTIN, adding a worker.")
        self.processes_num += 1  # run() starts it, as it starts the others
