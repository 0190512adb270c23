"""SIGTERM under load, one worker and several: no request is lost once the server has accepted it.

Clients on raw sockets tell the outcomes apart: a refused connection was never sent (safe to
retry); a request that was sent and then met a reset or a closed connection without an answer is
lost (the client cannot know whether it was processed). Every other request must be answered 200.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import PRIMARY_KEY, SAMPLE_ROWS
from tests.serving.server import running_server

# Timing-sensitive: `make test` runs these alone, after the parallel run.
pytestmark = pytest.mark.serial


BODY = ('{"data": [' + ",".join(str(v) for v in SAMPLE_ROWS[0]) + "]}").encode()


def request_bytes(port: int, keep_alive: bool) -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        f"POST /score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {PRIMARY_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n".encode()
        + b"Connection: "
        + connection
        + b"\r\n\r\n"
        + BODY
    )


def read_response(sock: socket.socket) -> tuple[int, bool] | None:
    """(status, server closes) of one response, or None if the connection ended without one."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return int(lines[0].split()[1]), headers.get("connection", "").lower() == "close"


def client(port: int, keep_alive: bool, stop: threading.Event, outcomes: Counter) -> None:
    sock: socket.socket | None = None
    while not stop.is_set():
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                # Refused, reset during the handshake, or no local port free: nothing was sent.
                outcomes["refused"] += 1
                time.sleep(0.01)
                continue
        try:
            sock.sendall(request_bytes(port, keep_alive))
            answer = read_response(sock)
        except OSError:
            answer = None
        if answer is None:
            # A kept-alive connection the server closed while idle, before this request reached it,
            # ends without a byte read; only a reset or close after a fresh connect's request counts
            # as lost too: both are indistinguishable to a client, so both are counted.
            outcomes["lost"] += 1
            sock.close()
            sock = None
            continue
        status, closes = answer
        outcomes[status] += 1
        if closes or not keep_alive:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


def run_shutdown(tmp_path: Path, workers: int, keep_alive: bool, second_sigterm: bool) -> Counter:
    env = {
        "SERVING_API_KEYS": f"{PRIMARY_KEY},other-key-0123456789abcdef",
        "SERVING_SHUTDOWN_DELAY_SECONDS": "1",
        "SERVING_DRAIN_TIMEOUT_SECONDS": "5",
        "SERVING_ACCESS_LOG": "false",
        "SERVING_MAX_QUEUE_SIZE": "1000",
        "SERVING_MAX_QUEUE_WAIT_MS": "10000",
    }
    outcomes: Counter = Counter()
    with running_server(tmp_path, args=["--workers", str(workers)], env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(port, keep_alive, stop, outcomes)) for _ in range(24)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        server.process.send_signal(signal.SIGTERM)
        if second_sigterm:
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0, server.log()
        time.sleep(0.3)  # clients now meet a closed port
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_no_request(tmp_path: Path, workers: int) -> None:
    outcomes = run_shutdown(tmp_path, workers, keep_alive=False, second_sigterm=False)
    assert outcomes[200] > 50, outcomes
    assert outcomes["refused"] > 0, "clients went on until the port was closed"
    assert outcomes["lost"] == 0, outcomes
    assert set(outcomes) <= {200, "refused"}, outcomes


@pytest.mark.parametrize("workers", [1, 2])
def test_second_sigterm_does_not_cut_keep_alive_requests(tmp_path: Path, workers: int) -> None:
    outcomes = run_shutdown(tmp_path, workers, keep_alive=True, second_sigterm=True)
    assert outcomes[200] > 50, outcomes
    assert outcomes["lost"] == 0, outcomes
    assert set(outcomes) <= {200, "refused"}, outcomes
