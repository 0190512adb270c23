"""Prometheus metrics (prometheus-client), safe with several worker processes."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

__all__ = ["CONTENT_TYPE", "Metrics", "multiprocess_enabled"]


def multiprocess_enabled() -> bool:
    """Set by the CLI before workers start: every worker writes to files that /metrics adds up."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The server's metrics in their own registry; label children are cached off the hot path."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlserve_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "mlserve_request_duration_seconds",
            "Time from request to response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "mlserve_inference_duration_seconds",
            "Time scoring one request (parse, model, encode) in a worker thread",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("mlserve_rows_scored", "Rows scored", ["route"], registry=r)
        self.rejections = Counter("mlserve_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.in_flight = Gauge(
            "mlserve_inflight_requests", "Inference requests being scored", registry=r, multiprocess_mode="livesum"
        )
        self.queued = Gauge(
            "mlserve_queued_requests",
            "Inference requests waiting for a slot",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "mlserve_model_info",
            "The model being served (value 1)",
            ["name", "version"],
            registry=r,
            multiprocess_mode="max",
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.request_seconds.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_scoring(self, route: str, rows: int, seconds: float) -> None:
        self.inference_seconds.labels(route).observe(seconds)
        self.rows.labels(route).inc(rows)

    def exposition(self) -> bytes:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def worker_exited(pid: int) -> None:
        if multiprocess_enabled():
            multiprocess.mark_process_dead(pid)
