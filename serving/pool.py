"""The inference pool: N worker threads, a bounded queue in front of them, queue-wait and scoring deadlines.

Work is handed to the thread pool as soon as it is admitted, so threads never idle waiting for the
event loop to pass the next request along; the loop only keeps count and watches deadlines (one
timer per request, no task per request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import onnxruntime as ort

from serving.errors import Overloaded, ScoringTimeout

T = TypeVar("T")


class Job(Generic[T]):
    """One request's work. `run_options.terminate` stops onnxruntime between graph nodes."""

    __slots__ = ("deadline_timer", "future", "outcome", "queue_deadline", "run_options", "started", "work")

    def __init__(self, work: Callable[[ort.RunOptions], T], queue_deadline: float) -> None:
        self.work = work
        self.run_options = ort.RunOptions()
        self.started: float | None = None
        self.queue_deadline = queue_deadline
        self.future: Future[T] | None = None
        self.outcome: asyncio.Future[T] | None = None
        self.deadline_timer: asyncio.TimerHandle | None = None

    def __call__(self) -> T:  # in a worker thread
        self.started = time.monotonic()
        return self.work(self.run_options)


class InferencePool:
    def __init__(self, threads: int, queue_size: int, max_queue_wait: float, scoring_timeout: float) -> None:
        self.threads = threads
        self.capacity = threads + queue_size
        self.max_queue_wait = max_queue_wait
        self.scoring_timeout = scoring_timeout
        self.pending = 0  # admitted and not finished: running or queued
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")

    @property
    def running(self) -> int:
        return min(self.pending, self.threads)

    @property
    def queued(self) -> int:
        return max(0, self.pending - self.threads)

    async def run(self, work: Callable[[ort.RunOptions], T]) -> T:
        """Run `work` in a thread; Overloaded (503) when full or not started in time, ScoringTimeout (504)."""
        if self.pending >= self.capacity:
            raise Overloaded("server is at capacity: the request queue is full", reason="queue_full")
        loop = asyncio.get_running_loop()
        job = Job(work, time.monotonic() + self.max_queue_wait)
        job.outcome = loop.create_future()
        job.future = self._executor.submit(job)
        self.pending += 1
        job.future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._finished, job, done))
        job.deadline_timer = loop.call_at(
            loop.time() + min(self.max_queue_wait, self.scoring_timeout), self._check_deadlines, job
        )
        try:
            return await job.outcome
        finally:
            job.deadline_timer.cancel()
            # Two reference cycles would otherwise keep each request's body (and all a failed parse
            # built: 150 MB for a 6 MB body of empty objects) until a full collection, which a busy
            # worker rarely reaches: job -> future -> its done callback -> job, and job -> outcome ->
            # exception -> traceback -> this frame -> job. Without them, the request's memory goes
            # as soon as its answer is sent. A late `_finished` sees `outcome` None and only counts.
            job.future = None
            job.outcome = None

    def _finished(self, job: Job[T], done: Future[T]) -> None:
        self.pending -= 1  # only now: a timed-out run still holds its thread until onnxruntime stops
        if job.outcome is None or job.outcome.done():
            if not done.cancelled():
                done.exception()  # mark retrieved: the caller already had its answer
            return
        if done.cancelled():
            job.outcome.cancel()
        elif done.exception() is not None:
            job.outcome.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            job.outcome.set_result(done.result())

    def _check_deadlines(self, job: Job[T]) -> None:
        if job.outcome is None or job.future is None or job.outcome.done():
            return
        loop = job.outcome.get_loop()
        now = time.monotonic()
        if job.started is None and not job.future.running():  # still waiting for a thread
            if now < job.queue_deadline:
                job.deadline_timer = loop.call_at(loop.time() + (job.queue_deadline - now), self._check_deadlines, job)
                return
            if job.future.cancel():
                job.outcome.set_exception(
                    Overloaded(
                        f"server is at capacity: no inference slot within {self.max_queue_wait * 1000:.0f} ms",
                        reason="queue_timeout",
                    )
                )
                return
        started = job.started if job.started is not None else now
        scoring_deadline = started + self.scoring_timeout
        if now >= scoring_deadline:
            job.run_options.terminate = True
            job.outcome.set_exception(ScoringTimeout(f"scoring took longer than {self.scoring_timeout * 1000:.0f} ms"))
            return
        job.deadline_timer = loop.call_at(loop.time() + (scoring_deadline - now), self._check_deadlines, job)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
