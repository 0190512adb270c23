"""Finished requests: noted on the hot path, settled into metrics and access lines in batches.

Noting a request is one tuple appended to a list. Settling updates the metric tallies and writes
the access lines for everything noted since the last time: the same work, but done for up to
`limit` requests in one tight loop, with warm caches, instead of once between every two system
calls. The server settles twice a second, before every scrape, at shutdown, and whenever `limit`
requests are waiting, so metrics are exact when read and memory stays bounded. All of it runs on
the event loop, so nothing needs a lock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from serving.logs import AccessLog
from serving.metrics import Metrics

# Paths in access lines are cut here: a client must not be able to write arbitrarily long lines.
MAX_LOGGED_PATH = 200


class Finished(NamedTuple):
    """What one finished request leaves behind."""

    request_id: str
    method: str
    route: str  # the route table's template, or `other`
    path: str
    status: int
    started: float  # by time.perf_counter()
    finished: float
    rows: int
    scoring_seconds: float | None  # None when the request was not scored


class RequestSink(Protocol):
    """Where settled requests go besides metrics and access lines (Application Insights: serving/telemetry.py)."""

    def record(self, requests: Sequence[Finished], wall_offset: float) -> None: ...

    def shutdown(self) -> None: ...


class RequestJournal:
    def __init__(
        self, metrics: Metrics, access_log: AccessLog, limit: int = 128, telemetry: RequestSink | None = None
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.limit = limit
        self.telemetry = telemetry
        self._entries: list[Finished] = []

    def note(self, entry: Finished) -> None:
        entries = self._entries
        entries.append(entry)
        if len(entries) >= self.limit:
            self.settle()

    def settle(self) -> None:
        entries = self._entries
        if not entries:
            return
        self._entries = []
        wall_offset = time.time() - time.perf_counter()
        observe_request = self.metrics.observe_request
        observe_scoring = self.metrics.observe_scoring
        write = self.access_log.write
        for request_id, method, route, path, status, started, finished, rows, scoring_seconds in entries:
            seconds = finished - started
            observe_request(route, status, seconds)
            if scoring_seconds is not None:
                observe_scoring(route, rows, scoring_seconds)
            write(request_id, method, route, path[:MAX_LOGGED_PATH], status, seconds, rows, finished + wall_offset)
        if self.telemetry is not None:
            self.telemetry.record(entries, wall_offset)
