"""Application Insights: the real server and the real exporter, sending to a local HTTP sink.

The connection string's IngestionEndpoint points at the sink, as it points at Azure in production.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.telemetry_sampling import SAMPLE_RATE_ATTRIBUTE
from tests.conftest import PRIMARY_KEY, SAMPLE_ROWS
from tests.serving.server import json_endpoint, running_server

IKEY = "00000000-0000-0000-0000-00000000feed"


class Sink:
    def __init__(self) -> None:
        self.items: list[dict] = []
        self.lock = threading.Lock()

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [i for i in self.items if i.get("name", "").endswith(kind)]


@pytest.fixture
def sink() -> Iterator[tuple[Sink, str]]:
    received = Sink()

    def ingest(body: bytes) -> dict:
        text = body.decode()
        items = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
        with received.lock:
            received.items.extend(items)
        return {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}

    with json_endpoint(ingest) as endpoint:
        yield received, f"InstrumentationKey={IKEY};IngestionEndpoint={endpoint}"


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "telemetry did not arrive"
        time.sleep(0.2)


def test_requests_reach_application_insights(tmp_path: Path, sink: tuple[Sink, str]) -> None:
    received, connection_string = sink
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "SERVING_API_KEYS": f"{PRIMARY_KEY},other-key-0123456789abcdef",
        "SERVING_TELEMETRY_REQUESTS_PER_SECOND": "1000",
        "SERVING_MODEL_NAME": "rain",
        "SERVING_MODEL_VERSION": "7",
    }
    with running_server(tmp_path, env=env) as server:
        headers = {"Authorization": f"Bearer {PRIMARY_KEY}", "X-Request-Id": "req-123"}
        assert httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers=headers).status_code == 200
        assert httpx.post(server.url + "/score", json={"data": [[1]]}, headers=headers).status_code == 400
        assert httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}).status_code == 401
        wait_for(lambda: len(received.of("Request")) >= 3)
    # Health probes (GET /ping while the server starts) are requests too: pick the scoring ones.
    scoring = [r for r in received.of("Request") if r["data"]["baseData"]["name"] == "POST /score"]
    requests = {r["data"]["baseData"]["responseCode"]: r for r in scoring}
    scored = requests["200"]
    assert scored["iKey"] == IKEY
    base = scored["data"]["baseData"]
    assert base["name"] == "POST /score"
    assert base["success"] is True
    properties = base["properties"]
    assert properties["mlserve.request_id"] == "req-123"
    assert properties["mlserve.model.name"] == "rain"
    assert properties["mlserve.model.version"] == "7"
    assert properties["mlserve.rows"] == "3"
    assert scored["tags"]["ai.cloud.role"].endswith("rain")
    duration = base["duration"]  # d.hh:mm:ss.ffffff
    assert duration.startswith("0.00:00:0"), duration
    assert {"400", "401"} <= set(requests)
    assert scored["sampleRate"] == 100.0


def test_telemetry_is_sampled_to_the_configured_rate_and_counts_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from serving import telemetry as module
    from serving.telemetry import Telemetry

    spans = InMemorySpanExporter()
    telemetry = Telemetry("InstrumentationKey=" + IKEY, "m", "1", 50.0, span_exporter=spans)
    # Exactly one second of budget, about 50 spans, however long a busy machine took to get here.
    monkeypatch.setattr(module, "monotonic", lambda: telemetry._since + 1.0)
    entries = [(f"r{i}", "POST", "/score", "/score", 200, 1.0, 1.001, 1, 0.0005) for i in range(5000)]
    telemetry.record(entries, wall_offset=1_700_000_000.0)
    telemetry.shutdown()
    kept = spans.get_finished_spans()
    assert 20 <= len(kept) <= 90
    # Application Insights counts each kept item 100 / sampleRate times: the total stays about 5000.
    rate = kept[0].attributes[SAMPLE_RATE_ATTRIBUTE]
    assert rate == pytest.approx(1.0, rel=0.05)
    assert len(kept) * 100 / rate == pytest.approx(5000, rel=0.6)


def test_the_exporter_still_reads_the_sample_rate_attribute() -> None:
    """telemetry_sampling.py relies on a private name of the pinned exporter: fail loudly if it changes."""
    from azure.monitor.opentelemetry.exporter.export.trace._exporter import _convert_span_to_envelope
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    span = provider.get_tracer("t").start_span("x", kind=SpanKind.SERVER, attributes={SAMPLE_RATE_ATTRIBUTE: 12.5})
    span.end()
    envelope = _convert_span_to_envelope(spans.get_finished_spans()[0])
    assert envelope.sample_rate == 12.5


def test_logged_exceptions_become_exception_items() -> None:
    import logging

    from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
    from opentelemetry.sdk._logs.export import InMemoryLogExporter

    from serving.telemetry import Telemetry

    logs = InMemoryLogExporter()
    telemetry = Telemetry("InstrumentationKey=" + IKEY, "m", "1", 5.0, log_exporter=logs)
    try:
        raise RuntimeError("model exploded")
    except RuntimeError:
        logging.getLogger("serving").exception("unexpected error on /score (request r1)")
    logging.getLogger("serving").info("not an error: stays out")
    telemetry.shutdown()
    (record,) = logs.get_finished_logs()
    envelope = _convert_log_to_envelope(record)
    assert envelope.name.endswith("Exception")
    details = envelope.data.base_data.exceptions[0]
    assert details.type_name == "RuntimeError"
    assert "model exploded" in details.stack
    assert details.message == "unexpected error on /score (request r1)"
