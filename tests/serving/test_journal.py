"""Finished requests reach the metrics and the access log exactly once, in order, with their own times."""

from __future__ import annotations

import io
import json
import time

from serving.journal import Finished, RequestJournal
from serving.logs import AccessLog
from serving.metrics import Metrics


class Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def _journal(limit: int = 128) -> tuple[RequestJournal, Metrics, AccessLog, Sink]:
    sink = Sink()
    metrics, access_log = Metrics(), AccessLog(True, sink)
    return RequestJournal(metrics, access_log, limit=limit), metrics, access_log, sink


def _lines(access_log: AccessLog, sink: Sink) -> list[dict]:
    access_log.flush()
    return [json.loads(line) for line in sink.data.decode().splitlines()]


def test_settling_turns_noted_requests_into_metrics_and_access_lines() -> None:
    journal, metrics, access_log, sink = _journal()
    now = time.perf_counter()
    journal.note(Finished("id-1", "POST", "/score", "/score", 200, now - 0.002, now, 3, 0.0015))
    journal.note(Finished("id-2", "GET", "other", "/" + "x" * 500, 404, now - 0.001, now, 0, None))
    assert _lines(access_log, sink) == [], "nothing is written until the journal settles"
    assert metrics.tallies.requests == {}

    journal.settle()
    assert metrics.tallies.requests == {"/score 200": 1, "other 404": 1}
    assert metrics.tallies.rows == {"/score": 3}
    assert set(metrics.tallies.inference_latency) == {"/score"}, "unscored requests have no inference time"
    first, second = _lines(access_log, sink)
    assert first["request_id"] == "id-1"
    assert first["rows"] == 3
    assert 1900 <= first["latency_us"] <= 2100
    assert abs(first["time"] - time.time()) < 5, "wall-clock time of the response, not a perf counter"
    assert len(second["path"]) == 200, "long paths are cut"

    journal.settle()
    assert metrics.tallies.requests == {"/score 200": 1, "other 404": 1}, "settled entries are not counted twice"


def test_a_full_journal_settles_by_itself() -> None:
    journal, metrics, access_log, sink = _journal(limit=4)
    now = time.perf_counter()
    for n in range(9):
        journal.note(Finished(f"id-{n}", "POST", "/score", "/score", 200, now, now, 1, 0.0))
    assert metrics.tallies.requests == {"/score 200": 8}
    assert [line["request_id"] for line in _lines(access_log, sink)] == [f"id-{n}" for n in range(8)]
