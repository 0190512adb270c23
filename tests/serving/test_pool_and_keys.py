"""The inference pool's capacity and deadlines, and the key check, as units: no server, no sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from serving.auth import KeyCheck
from serving.errors import Overloaded, ScoringTimeout, Unauthorized
from serving.pool import InferencePool


def run(coroutine: Any) -> Any:
    loop = asyncio.new_event_loop()  # not asyncio.run: it would leave this thread without a current loop
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def blocking(release: threading.Event) -> Callable[[Any], str]:
    def work(run_options: Any) -> str:
        release.wait(5)
        return "done"

    return work


def test_a_full_pool_refuses_at_once_and_a_queued_job_times_out_waiting() -> None:
    async def scenario() -> tuple[str, BaseException, BaseException]:
        pool = InferencePool(threads=1, queue_size=1, max_queue_wait=0.05, scoring_timeout=5)
        release = threading.Event()
        running = asyncio.ensure_future(pool.run(blocking(release)))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(pool.run(lambda _: "never"))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as full:
            await pool.run(lambda _: "refused")
        with pytest.raises(Overloaded) as waited:
            await queued
        release.set()
        result = await running
        pool.shutdown()
        return result, full.value, waited.value

    result, full, waited = run(scenario())
    assert result == "done"
    assert (full.status, full.reason) == (503, "queue_full")
    assert (waited.status, waited.reason) == (503, "queue_timeout")
    assert "no inference slot within 50 ms" in str(waited)


def test_scoring_past_its_deadline_answers_504_and_asks_onnxruntime_to_stop() -> None:
    seen: list[Any] = []

    def slow(run_options: Any) -> str:
        seen.append(run_options)
        for _ in range(200):
            if run_options.terminate:
                return "stopped"
            threading.Event().wait(0.01)
        return "finished"

    async def scenario() -> BaseException:
        pool = InferencePool(threads=1, queue_size=0, max_queue_wait=1, scoring_timeout=0.05)
        with pytest.raises(ScoringTimeout) as timed_out:
            await pool.run(slow)
        while pool.pending:  # the thread is free again once the run notices
            await asyncio.sleep(0.01)
        pool.shutdown()
        return timed_out.value

    error = run(scenario())
    assert error.status == 504
    assert len(seen) == 1
    assert seen[0].terminate is True


def test_errors_in_the_work_reach_the_caller_and_free_the_slot() -> None:
    def broken(_: Any) -> str:
        raise ValueError("bad row")

    async def scenario() -> int:
        pool = InferencePool(threads=1, queue_size=0, max_queue_wait=1, scoring_timeout=1)
        with pytest.raises(ValueError, match="bad row"):
            await pool.run(broken)
        await asyncio.sleep(0.01)
        pending = pool.pending
        pool.shutdown()
        return pending

    assert run(scenario()) == 0


KEYS = (SecretStr("p" * 32), SecretStr("s" * 32))


@pytest.mark.parametrize("header", [b"Bearer " + b"p" * 32, b"bearer " + b"s" * 32, b"BEARER  " + b"p" * 32])
def test_either_key_is_accepted_with_any_case_of_the_scheme(header: bytes) -> None:
    KeyCheck(KEYS).verify(header)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Authorization header"),
        (b"Bearer " + b"x" * 32, "invalid API key"),
        (b"Basic " + b"p" * 32, "invalid API key"),
        (b"p" * 32, "invalid API key"),
        (b"Bearer " + b"p" * 31, "invalid API key"),
    ],
)
def test_a_missing_or_wrong_key_is_401_saying_how_to_send_one(header: bytes | None, reason: str) -> None:
    with pytest.raises(Unauthorized) as refused:
        KeyCheck(KEYS).verify(header)
    assert refused.value.status == 401
    assert str(refused.value) == f"{reason}; send 'Authorization: Bearer <key>'"


def test_replaced_keys_take_effect_and_no_keys_means_no_check() -> None:
    check = KeyCheck(KEYS)
    check.replace((SecretStr("n" * 32),))
    check.verify(b"Bearer " + b"n" * 32)
    with pytest.raises(Unauthorized):
        check.verify(b"Bearer " + b"p" * 32)
    open_check = KeyCheck(())
    assert open_check.enabled is False
    open_check.verify(None)
