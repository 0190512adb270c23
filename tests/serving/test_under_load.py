"""Overload, timeouts, size limits, liveness under saturation and graceful drain, over real HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.serving.models import slow_regressor
from tests.serving.server import RunningServer, running_server

# Timing-sensitive: `make test` runs these alone, after the parallel run.
pytestmark = pytest.mark.serial


SLOW_ROWS = 4000  # about 2 s on one thread with the slow model
ONE_ROW = [[0.1] * 7]


def rows(n: int) -> dict:
    return {"data": [[0.1] * 7] * n}


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slow_regressor(tmp_path_factory.mktemp("slow") / "slow.onnx")


def slow_env(model: Path, **settings: str) -> dict[str, str]:
    """One worker serving the slow model, with these settings (SERVING_* names in lower case)."""
    named = {f"SERVING_{name.upper()}": value for name, value in settings.items()}
    return {"SERVING_MODEL": str(model), "SERVING_WORKERS": "1", **named}


@pytest.fixture
def slow_server(tmp_path: Path, slow_model: Path) -> Iterator[RunningServer]:
    env = slow_env(
        slow_model,
        max_concurrent_requests="1",
        max_queue_size="2",
        max_queue_wait_ms="800",
        # Far above the slow model's run even on a loaded machine: these tests are about admission.
        scoring_timeout_ms="30000",
        max_body_bytes="1000000",
    )
    with running_server(tmp_path, env=env) as server:
        yield server


def wait_until_scoring(server: RunningServer, timeout: float = 10) -> None:
    """Until the server reports a request being scored (the slow one holds the only thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "mlserve_inflight_requests 1.0" in httpx.get(server.url + "/metrics", timeout=5).text:
            return
        time.sleep(0.02)
    raise AssertionError("the slow request never started scoring")


def test_overload_answers_503_with_retry_after_and_no_other_5xx(slow_server: RunningServer) -> None:
    def post(_: int) -> tuple[int, dict, float]:
        started = time.monotonic()
        response = httpx.post(slow_server.url + "/score", json=rows(1500), timeout=30)
        return response.status_code, dict(response.headers), time.monotonic() - started

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(post, range(10)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1
    rejected = [(headers, seconds) for status, headers, seconds in results if status == 503]
    assert rejected
    assert all(headers["retry-after"] == "1" for headers, _ in rejected)
    # A full queue refuses at once instead of making the caller wait out the queue wait.
    assert min(seconds for _, seconds in rejected) < 0.8
    metrics = httpx.get(slow_server.url + "/metrics").text
    assert 'mlserve_rejections_total{reason="queue_full"}' in metrics


def test_queue_wait_runs_out_with_503(slow_server: RunningServer) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        busy = pool.submit(httpx.post, slow_server.url + "/score", json=rows(SLOW_ROWS), timeout=60)
        wait_until_scoring(slow_server)
        waiting = httpx.post(slow_server.url + "/score", json={"data": ONE_ROW}, timeout=30)
        assert waiting.status_code == 503
        assert "800 ms" in waiting.json()["error"]
        assert busy.result().status_code == 200
    assert 'mlserve_rejections_total{reason="queue_timeout"}' in httpx.get(slow_server.url + "/metrics").text


def test_scoring_timeout_answers_504_and_the_server_recovers(tmp_path: Path, slow_model: Path) -> None:
    env = slow_env(
        slow_model,
        max_concurrent_requests="1",
        scoring_timeout_ms="300",
        max_queue_wait_ms="1000",
    )
    with running_server(tmp_path, env=env) as server:
        started = time.monotonic()
        slow = httpx.post(server.url + "/score", json=rows(SLOW_ROWS), timeout=30)
        assert slow.status_code == 504
        assert slow.json()["code"] == "scoring_timeout"
        assert time.monotonic() - started < 2.0  # answered at the timeout, not when the model finished
        # The timed-out run was stopped, so the only thread is free again for the next request.
        after = httpx.post(server.url + "/score", json={"data": ONE_ROW}, timeout=30)
        assert after.status_code == 200
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def test_liveness_and_ping_answer_while_inference_is_saturated(slow_server: RunningServer) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        for _ in range(3):
            pool.submit(httpx.post, slow_server.url + "/score", json=rows(SLOW_ROWS), timeout=30)
        time.sleep(0.3)
        for path in ["/v2/health/live", "/ping", "/", "/metrics"]:
            response = httpx.get(slow_server.url + path, timeout=1.0)
            assert response.status_code == 200, path
        metrics = httpx.get(slow_server.url + "/metrics", timeout=1.0).text
        assert "mlserve_inflight_requests 1.0" in metrics


def test_body_over_the_limit_is_413_without_reading_it(slow_server: RunningServer) -> None:
    big = b"x" * 1_500_000
    response = httpx.post(slow_server.url + "/score", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "limit of 1000000 bytes" in response.json()["error"]


def test_chunked_body_over_the_limit_is_413(slow_server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 50_000

    response = httpx.post(slow_server.url + "/invocations", content=chunks(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 413
    assert httpx.post(slow_server.url + "/score", json={"data": ONE_ROW}).status_code == 200


def test_sigterm_drains_gracefully(tmp_path: Path, slow_model: Path) -> None:
    # The slow request takes about 2 s, and over 10 s on a machine busy with other work: the drain and
    # scoring timeouts are far above it, so only the drain decides the outcome.
    env = slow_env(
        slow_model,
        shutdown_delay_seconds="1",
        drain_timeout_seconds="40",
        scoring_timeout_ms="40000",
    )
    with running_server(tmp_path, env=env) as server:
        outcome: dict[str, int] = {}

        def in_flight() -> None:
            outcome["status"] = httpx.post(server.url + "/score", json=rows(SLOW_ROWS), timeout=60).status_code

        request = threading.Thread(target=in_flight)
        request.start()
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = httpx.get(server.url + "/v2/health/ready", timeout=2)
        assert ready.status_code == 503
        assert ready.json()["error"] == "draining"
        assert httpx.get(server.url + "/ping", timeout=2).status_code == 503
        assert httpx.get(server.url + "/v2/health/live", timeout=2).status_code == 200
        request.join(timeout=60)
        assert outcome["status"] == 200
        assert server.process.wait(timeout=15) == 0


def test_a_request_pipelined_behind_a_slow_one_is_answered_not_timed_out(tmp_path: Path, slow_model: Path) -> None:
    """HTTP/1.1 pipelining: the second request's body is due once it is its turn, not while the first is scored."""
    env = slow_env(
        slow_model,
        header_timeout_seconds="1",
        body_timeout_seconds="1",
        scoring_timeout_ms="30000",
    )
    slow_body = json.dumps(rows(SLOW_ROWS)).encode()
    quick_body = json.dumps({"data": ONE_ROW}).encode()

    def head(body: bytes) -> bytes:
        return b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + (
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )

    with running_server(tmp_path, env=env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            started = time.monotonic()
            sock.sendall(head(slow_body) + slow_body + head(quick_body))
            time.sleep(1.3)  # past the body deadline, while the slow request is still being scored
            sock.sendall(quick_body)
            data = b""
            first_answer = 0.0
            while len(re.findall(rb"HTTP/1.1 \d+", data)) < 2 or not data.endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                first_answer = first_answer or time.monotonic() - started
                data += chunk
    statuses = re.findall(rb"HTTP/1.1 (\d+)", data)
    assert first_answer > 1.3, "the slow request was still scored past the body deadline (else this proves nothing)"
    assert statuses == [b"200", b"200"], data[:300]
