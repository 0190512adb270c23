"""Graceful drain on SIGTERM: not ready at once, keep serving briefly, then let uvicorn finish in-flight work.

Kubernetes and load balancers take a moment to stop routing to a terminating pod; answering 503 on
readiness while still serving for `shutdown_delay` avoids dropping the requests they still send.
Uvicorn then stops accepting connections and waits up to its graceful timeout for in-flight requests.
"""

from __future__ import annotations

import asyncio
import logging
import signal
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
        # Setting should_exit (rather than calling uvicorn's handler) avoids re-raising SIGTERM after
        # shutdown, so the process exits 0.
        server.should_exit = True

    def on_sigterm(_signal: int, _frame: FrameType | None) -> None:
        if state.draining:  # a second SIGTERM: stop waiting
            stop()
            return
        state.draining = True
        log.info("SIGTERM: draining; not ready, stopping in %.1f s", shutdown_delay)
        loop.call_soon_threadsafe(loop.call_later, shutdown_delay, stop)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
