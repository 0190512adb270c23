"""Application Insights: request telemetry and exceptions through the Azure Monitor OpenTelemetry exporter.

On only when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set. Requests are not traced on the hot
path: the journal hands over finished requests in batches, and a rate-limited share of them becomes
OpenTelemetry server spans (the exporter turns them into Request items, exported from its own
thread). Sampling is decided here, per batch, at the cost of one random number per request, because
creating a span even to drop it costs about 3 µs, a fifth of a request's whole budget at full load
(measured in bench/README.md). Each kept span carries its sampling percentage, so Application
Insights counts every request (itemCount). Exceptions logged by the server go out as Exception
items through the log exporter.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from time import monotonic
from typing import TYPE_CHECKING

from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter, AzureMonitorTraceExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from serving.journal import MAX_LOGGED_PATH
from serving.telemetry_sampling import SAMPLE_RATE_ATTRIBUTE

if TYPE_CHECKING:
    from serving.journal import Finished


class Telemetry:
    def __init__(
        self,
        connection_string: str,
        model_name: str,
        model_version: str,
        max_requests_per_second: float,
        span_exporter: AzureMonitorTraceExporter | None = None,
        log_exporter: AzureMonitorLogExporter | None = None,
    ) -> None:
        resource = Resource.create(
            {"service.name": model_name, "service.version": model_version, "service.namespace": "mlserve"}
        )
        self.tracer_provider = TracerProvider(resource=resource, sampler=ALWAYS_ON)  # sampled here already
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(span_exporter or AzureMonitorTraceExporter(connection_string=connection_string))
        )
        self.tracer = self.tracer_provider.get_tracer("mlserve")
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(log_exporter or AzureMonitorLogExporter(connection_string=connection_string))
        )
        self.handler = LoggingHandler(level=logging.ERROR, logger_provider=self.logger_provider)
        logging.getLogger("serving").addHandler(self.handler)
        self.model = {"mlserve.model.name": model_name, "mlserve.model.version": model_version}
        self.rate = max_requests_per_second
        self._since = monotonic()

    def record(self, requests: Sequence[Finished], wall_offset: float) -> None:
        """Turn a share of finished requests into server spans: about `rate` a second, any load.

        `wall_offset` turns the entries' perf_counter() times into wall-clock seconds.
        """
        if not requests:
            return
        now = monotonic()
        budget = self.rate * max(now - self._since, 0.001)
        self._since = now
        share = min(1.0, budget / len(requests))
        if share <= 0:
            return
        percentage = share * 100.0
        chance = random.random
        for request_id, method, route, path, status, started, finished, rows, _ in requests:
            if share < 1.0 and chance() >= share:
                continue
            span = self.tracer.start_span(
                f"{method} {route}",
                kind=SpanKind.SERVER,
                start_time=int((started + wall_offset) * 1e9),
                attributes={
                    "http.request.method": method,
                    "http.route": route,
                    "url.path": path[:MAX_LOGGED_PATH],
                    "http.response.status_code": status,
                    "mlserve.request_id": request_id,
                    "mlserve.rows": rows,
                    SAMPLE_RATE_ATTRIBUTE: percentage,
                    **self.model,
                },
            )
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=int((finished + wall_offset) * 1e9))

    def shutdown(self) -> None:
        """Send what is buffered (at server shutdown)."""
        logging.getLogger("serving").removeHandler(self.handler)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
