"""Bounded concurrency: N inferences at once, a bounded FIFO queue, and a bounded wait in it."""

from __future__ import annotations

import asyncio
from collections import deque

from serving.errors import Overloaded


class Admission:
    """Admit at most `limit` requests at once; queue up to `queue_size` more for at most `max_wait` seconds.

    Runs on the event loop only, so plain counters need no locks.
    """

    def __init__(self, limit: int, queue_size: int, max_wait: float) -> None:
        self.limit = limit
        self.queue_size = queue_size
        self.max_wait = max_wait
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self.running < self.limit and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.queue_size:
            raise Overloaded("server is at capacity: the request queue is full", reason="queue_full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # The slot is handed over by release(), so `running` is already counted for us.
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait)
        except TimeoutError:
            if waiter.done():  # handed a slot just as the wait ran out: give it back
                self.release()
            else:
                self._waiters.remove(waiter)
                waiter.cancel()
            raise Overloaded(
                f"server is at capacity: no inference slot within {self.max_wait * 1000:.0f} ms",
                reason="queue_timeout",
            ) from None
        except asyncio.CancelledError:
            if waiter.done():
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self.running -= 1
