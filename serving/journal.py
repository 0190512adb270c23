"""Finished requests: noted on the hot path, settled into metrics and access lines in batches.

Noting a request is one tuple appended to a list. Settling updates the metric tallies and writes
the access lines for everything noted since the last time: the same work as before, but done for
thousands of requests in one tight loop, with warm caches, instead of once between every two
system calls. The server settles twice a second, before every scrape, at shutdown, and whenever
`limit` requests are waiting, so metrics are exact when read and memory stays bounded.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from serving.logs import AccessLog
from serving.metrics import Metrics

# Paths in access lines are cut here: a client must not be able to write arbitrarily long lines.
MAX_LOGGED_PATH = 200


class Finished(NamedTuple):
    request_id: str
    method: str
    route: str  # the metric label: a fixed path or a template
    path: str
    status: int
    started: float  # time.perf_counter()
    finished: float
    rows: int
    scoring_seconds: float | None  # None when the request was not scored


class RequestJournal:
    def __init__(self, metrics: Metrics, access_log: AccessLog, limit: int = 128) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.limit = limit
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
        for entry in entries:
            seconds = entry.finished - entry.started
            observe_request(entry.route, entry.status, seconds)
            if entry.scoring_seconds is not None:
                observe_scoring(entry.route, entry.rows, entry.scoring_seconds)
            write(
                entry.request_id,
                entry.method,
                entry.route,
                entry.path[:MAX_LOGGED_PATH],
                entry.status,
                seconds,
                entry.rows,
                entry.finished + wall_offset,
            )
