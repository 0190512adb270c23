"""Prometheus metrics and structured access logs."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PRIMARY_KEY, SAMPLE_ROWS
from tests.serving.server import RunningServer, running_server


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_rows_latency_and_the_model(tmp_path: Path) -> None:
    with running_server(tmp_path, args=["--workers", "1"]) as server:
        for _ in range(3):
            httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS})
        httpx.post(server.url + "/score", json={"data": "nope"})
        values = samples(httpx.get(server.url + "/metrics").text)
    assert values[("mlserve_requests_total", (("route", "/score"), ("status", "200")))] == 3
    assert values[("mlserve_requests_total", (("route", "/score"), ("status", "400")))] == 1
    assert values[("mlserve_rows_scored_total", (("route", "/score"),))] == 9
    assert values[("mlserve_request_duration_seconds_count", (("route", "/score"),))] == 4
    assert values[("mlserve_inference_duration_seconds_count", (("route", "/score"),))] == 3
    assert values[("mlserve_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "/score")))] == 4
    assert values[("mlserve_model_info", (("name", "weather-rain"), ("version", "1")))] == 1
    assert ("mlserve_inflight_requests", ()) in values
    assert ("mlserve_queued_requests", ()) in values


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    def post(_: int) -> int:
        # A new connection each time, from several threads, so both workers accept some.
        return httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}).status_code

    with running_server(tmp_path, args=["--workers", "2"]) as server:
        # Which worker accepts a connection is the kernel's choice: on a busy machine one worker can
        # take a whole burst, so bursts are sent until both have served (bounded).
        sent, pids = 0, set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(pids) < 2 and sent < 400:
                assert set(pool.map(post, range(40))) == {200}
                sent += 40
                pids = {json.loads(line)["pid"] for line in _access_lines(server)}  # waits for the publish
        values = samples(httpx.get(server.url + "/metrics").text)
    assert len(pids) == 2, f"both workers served requests (one took all {sent})"
    assert values[("mlserve_requests_total", (("route", "/score"), ("status", "200")))] == sent
    assert values[("mlserve_rows_scored_total", (("route", "/score"),))] == len(SAMPLE_ROWS) * sent


def _access_lines(server: RunningServer) -> list[str]:
    # Access lines are flushed twice a second.
    import time

    time.sleep(1.0)
    return [line for line in server.log().splitlines() if '"logger":"access"' in line]


def test_one_json_access_line_per_request_with_request_id(server: RunningServer) -> None:
    marked = [[*row[:5], 1013.271828, row[6]] for row in SAMPLE_ROWS]  # a value to look for in the log
    response = httpx.post(
        server.url + "/score",
        json={"data": marked},
        headers={"Authorization": f"Bearer {PRIMARY_KEY}", "X-Request-ID": "trace-42"},
    )
    assert response.headers["x-request-id"] == "trace-42"
    generated = httpx.get(server.url + "/ping").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", generated)
    lines = [json.loads(line) for line in _access_lines(server)]
    entry = next(line for line in lines if line["request_id"] == "trace-42")
    assert entry["route"] == "/score"
    assert entry["status"] == 200
    assert entry["rows"] == 3
    assert entry["latency_us"] > 0
    assert any(line["request_id"] == generated and line["route"] == "/ping" for line in lines)
    log = server.log()
    assert PRIMARY_KEY not in log
    assert "271828" not in log, "payloads are never logged"


def test_unsafe_request_ids_are_replaced(server: RunningServer) -> None:
    response = httpx.get(server.url + "/ping", headers={"X-Request-ID": "a" * 300})
    assert response.headers["x-request-id"] != "a" * 300
