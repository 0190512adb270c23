"""Prometheus metrics: cheap to record on the hot path, exposed in the standard format.

Recording a request is a few dict and list updates (well under a microsecond); prometheus-client
metric objects cost several microseconds per update, a large share of a 60 µs request. A custom
collector (prometheus-client's public Collector API) turns the tallies into metric families at
scrape time. With several workers each writes its tallies to the shared directory about once a
second, and a scrape adds up every worker's file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

__all__ = ["CONTENT_TYPE", "METRICS_DIR_VARIABLE", "Metrics"]

# Where the workers of one server meet, set by the CLI before they start. Not prometheus_client's
# PROMETHEUS_MULTIPROC_DIR: that name switches the library into a multiprocess mode this module does
# not use (the workers publish their own tallies).
METRICS_DIR_VARIABLE = "MLSERVE_WORKER_METRICS_DIR"


def _multiprocess_dir() -> str | None:
    return os.environ.get(METRICS_DIR_VARIABLE) or None


class Tallies:
    """Plain counters: what one process has seen. JSON-serialisable for the multi-worker files."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}  # "route status" -> count
        self.request_latency: dict[str, list[float]] = {}  # route -> bucket counts..., +Inf count, sum
        self.inference_latency: dict[str, list[float]] = {}
        self.rows: dict[str, int] = {}
        self.rejections: dict[str, int] = {}
        self.capture: dict[str, int] = {}  # outcome (uploaded, dropped) -> captured records

    def to_json(self) -> dict[str, Any]:
        return self.__dict__

    @classmethod
    def merged(cls, parts: list[dict[str, Any]]) -> Tallies:
        total = cls()
        for part in parts:
            for name, values in part.items():
                target = getattr(total, name)
                for key, value in values.items():
                    if isinstance(value, list):
                        current = target.setdefault(key, [0.0] * len(value))
                        target[key] = [a + b for a, b in zip(current, value, strict=True)]
                    else:
                        target[key] = target.get(key, 0) + value
        return total


def _observe(histograms: dict[str, list[float]], route: str, seconds: float) -> None:
    counts = histograms.get(route)
    if counts is None:
        counts = histograms[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
    counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
    counts[-1] += seconds


class Metrics(Collector):
    def __init__(self) -> None:
        self.tallies = Tallies()
        self.in_flight = 0
        self.queued = 0
        self.model: tuple[str, str] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # Hot path: plain Python on the event loop.

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = f"{route} {status}"
        requests = self.tallies.requests
        requests[key] = requests.get(key, 0) + 1
        _observe(self.tallies.request_latency, route, seconds)

    def observe_scoring(self, route: str, rows: int, seconds: float) -> None:
        _observe(self.tallies.inference_latency, route, seconds)
        self.tallies.rows[route] = self.tallies.rows.get(route, 0) + rows

    def reject(self, reason: str) -> None:
        self.tallies.rejections[reason] = self.tallies.rejections.get(reason, 0) + 1

    def capture_counts(self, uploaded: int, dropped: int) -> None:
        """The capture's running totals (serving/capture.py keeps them; they are copied in at each settle)."""
        self.tallies.capture = {"uploaded": uploaded, "dropped": dropped}

    # Exposition.

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def publish(self) -> None:
        """Write this worker's tallies for the others' scrapes (multi-worker only); atomic replace."""
        directory = _multiprocess_dir()
        if directory is None:
            return
        payload = {
            "pid": os.getpid(),
            "tallies": self.tallies.to_json(),
            "in_flight": self.in_flight,
            "queued": self.queued,
            "model": self.model,
        }
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out)
        os.replace(temp, os.path.join(directory, f"worker-{os.getpid()}.json"))

    def _snapshots(self) -> list[dict[str, Any]]:
        directory = _multiprocess_dir()
        if directory is None:
            return []
        self.publish()
        snapshots = []
        for path in glob.glob(os.path.join(directory, "worker-*.json")):
            with contextlib.suppress(OSError, ValueError), open(path) as handle:
                snapshots.append(json.load(handle))
        return snapshots

    def collect(self) -> Iterator[Metric]:
        snapshots = self._snapshots()
        if snapshots:
            tallies = Tallies.merged([s["tallies"] for s in snapshots])
            live = [s for s in snapshots if _alive(s["pid"])]
            in_flight = sum(s["in_flight"] for s in live)
            queued = sum(s["queued"] for s in live)
            models = {tuple(s["model"]) for s in live if s.get("model")}
        else:
            tallies, in_flight, queued = self.tallies, self.in_flight, self.queued
            models = {self.model} if self.model else set()

        requests = CounterMetricFamily(
            "mlserve_requests", "HTTP requests by route and status", labels=["route", "status"]
        )
        for key, count in sorted(tallies.requests.items()):
            route, status = key.rsplit(" ", 1)
            requests.add_metric([route, status], count)
        yield requests
        yield _histogram("mlserve_request_duration_seconds", "Time from request to response", tallies.request_latency)
        yield _histogram(
            "mlserve_inference_duration_seconds",
            "Time scoring one request: model run and response encoding",
            tallies.inference_latency,
        )
        rows = CounterMetricFamily("mlserve_rows_scored", "Rows scored", labels=["route"])
        for route, count in sorted(tallies.rows.items()):
            rows.add_metric([route], count)
        yield rows
        rejections = CounterMetricFamily("mlserve_rejections", "Requests refused, by reason", labels=["reason"])
        for reason, count in sorted(tallies.rejections.items()):
            rejections.add_metric([reason], count)
        yield rejections
        if tallies.capture:
            capture = CounterMetricFamily(
                "mlserve_capture_records",
                "Sampled requests for payload capture: uploaded, or dropped (store slow or unreachable)",
                labels=["outcome"],
            )
            for outcome, count in sorted(tallies.capture.items()):
                capture.add_metric([outcome], count)
            yield capture
        yield GaugeMetricFamily("mlserve_inflight_requests", "Inference requests being scored", value=in_flight)
        yield GaugeMetricFamily("mlserve_queued_requests", "Inference requests waiting for a thread", value=queued)
        info = GaugeMetricFamily("mlserve_model_info", "The model being served (value 1)", labels=["name", "version"])
        for name, version in sorted(models):
            info.add_metric([name, version], 1)
        yield info

    def worker_exited(self) -> None:
        """Leave final tallies behind so counters never go backwards when a worker stops."""
        self.in_flight = self.queued = 0
        self.publish()


def _histogram(name: str, documentation: str, histograms: dict[str, list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["route"])
    for route, counts in sorted(histograms.items()):
        cumulative, buckets = 0.0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts[:-1], strict=True):
            cumulative += count
            buckets.append((_bound(bound), cumulative))
        family.add_metric([route], buckets, counts[-1])
    return family


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
