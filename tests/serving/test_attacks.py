"""Cheap ways to take a server down, tried on loopback (bounded in time and count): it stays up.

Slow or silent senders meet deadlines; a flood of idle connections cannot exhaust the worker (the
oldest waiting ones make room); unfinished bodies cannot hold unbounded memory.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PRIMARY_KEY
from tests.serving.server import RunningServer, running_server

ENV = {
    "SERVING_API_KEYS": f"{PRIMARY_KEY},other-key-0123456789abcdef",
    "SERVING_HEADER_TIMEOUT_SECONDS": "1",
    "SERVING_BODY_TIMEOUT_SECONDS": "1.5",
    "SERVING_MAX_CONNECTIONS": "64",
    "SERVING_MAX_BUFFERED_BODY_BYTES": str(4 * 1024 * 1024),
    "SERVING_ACCESS_LOG": "false",
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("guarded"), env=ENV) as server:
        yield server


def connect(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize(
    ("what", "pieces"),
    [
        ("nothing", []),
        ("half a request line", [b"POST /sco"]),
        ("half the headers, trickled", [b"POST /score HTTP/1.1\r\n", b"Host: x\r\n", b"Content-"]),
        (
            "half a body",
            [
                b"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + PRIMARY_KEY.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            ],
        ),
    ],
)
def test_slow_senders_get_408_and_the_connection_closed(guarded: RunningServer, what: str, pieces: list[bytes]) -> None:
    sock = connect(guarded)
    started = time.monotonic()
    for piece in pieces:
        sock.sendall(piece)
        time.sleep(0.3)  # trickling does not extend the deadline
    data = answer(sock)
    elapsed = time.monotonic() - started
    sock.close()
    assert data.startswith(b"HTTP/1.1 408"), (what, data[:80])
    assert elapsed < 4, f"{what}: closed after {elapsed:.1f} s"


def test_a_flood_of_idle_connections_cannot_lock_out_health_checks(guarded: RunningServer) -> None:
    pid = guarded.process.pid
    flood = [connect(guarded) for _ in range(300)]  # 300 > the cap of 64
    try:
        for _ in range(5):
            started = time.monotonic()
            assert httpx.get(guarded.url + "/v2/health/live", timeout=5).status_code == 200
            assert time.monotonic() - started < 1
        assert open_fds(pid) < 64 + 40, "the worker holds no more connections than its cap"
    finally:
        for sock in flood:
            sock.close()


def test_unfinished_bodies_cannot_hold_unbounded_memory(guarded: RunningServer) -> None:
    pid = guarded.process.pid
    before = rss_mb(pid)
    held, refused = [], 0
    body = b"[" + b"1," * (512 * 1024)  # about 1 MB of a body that never ends
    head = (
        b"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + PRIMARY_KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body) + 10).encode()
        + b"\r\n\r\n"
    )
    for _ in range(50):  # 50 MB offered, 4 MB allowed
        sock = connect(guarded)
        try:
            sock.sendall(head + body)
        except OSError:
            refused += 1
            continue
        held.append(sock)
    time.sleep(0.3)
    peak = rss_mb(pid)
    assert httpx.get(guarded.url + "/ping", timeout=5).status_code == 200
    answers = [answer(s) for s in held]
    for sock in held:
        sock.close()
    assert sum(a.startswith(b"HTTP/1.1 503") for a in answers) + refused >= 40, "bodies past the cap are refused"
    assert all(a.startswith((b"HTTP/1.1 503", b"HTTP/1.1 408")) for a in answers)
    assert peak - before < 25, f"RSS grew {peak - before:.0f} MB"


def one_response(sock: socket.socket) -> bytes:
    """Read exactly one response (headers and a Content-Length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length, "no bytes beyond the response"
    return head


SCORE = (
    b"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + PRIMARY_KEY.encode() + b"\r\n"
    b"Content-Type: application/json\r\nContent-Length: 43\r\n\r\n"
    b'{"data": [[5, 0.95, 10, 180, 3, 995, 2.0]]}'
)


def test_a_busy_kept_alive_connection_outlives_every_deadline(guarded: RunningServer) -> None:
    """Deadlines restart with each request: a client sending for three times the header timeout is never cut."""
    sock = connect(guarded)
    started = time.monotonic()
    answered = 0
    while time.monotonic() - started < 3:
        sock.sendall(SCORE)
        assert one_response(sock).startswith(b"HTTP/1.1 200"), answered
        answered += 1
        time.sleep(0.4)  # under the 1 s header timeout each time
    sock.close()
    assert answered >= 6


def test_an_idle_kept_alive_connection_is_closed_quietly(guarded: RunningServer) -> None:
    """Between requests the header timeout (here 1 s, under the 5 s keep-alive) closes it, without a 408."""
    sock = connect(guarded)
    sock.sendall(SCORE)
    assert one_response(sock).startswith(b"HTTP/1.1 200")
    idle = time.monotonic()
    rest = answer(sock)
    waited = time.monotonic() - idle
    sock.close()
    assert rest == b"", rest[:80]
    assert 0.9 < waited < 2.5, f"closed after {waited:.1f} s idle"


def max_size_bodies(limit: int) -> dict[str, bytes]:
    """Bodies just under the body limit: rejected (objects or empty rows where rows of numbers go) and valid."""
    count = (limit - 20) // 3
    digits = "5." + "0" * ((limit - 40) // (10_000 * 7) - 4)  # long numbers: 10,000 rows of 7 reach the limit
    rows = ",".join(["[" + ",".join([digits] * 7) + "]"] * 10_000)
    return {
        "objects": b'{"data":[' + b",".join([b"{}"] * count) + b"]}",
        "empty rows": b'{"data":[' + b",".join([b"[]"] * count) + b"]}",
        "valid": ('{"data":[' + rows + "]}").encode(),
    }


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Production limits (6 MB bodies), and time enough to parse them on a busy test machine."""
    env = {"SERVING_API_KEYS": PRIMARY_KEY, "SERVING_SCORING_TIMEOUT_MS": "60000", "SERVING_ACCESS_LOG": "false"}
    with running_server(tmp_path_factory.mktemp("patient"), env=env) as server:
        yield server


def test_memory_comes_back_after_max_size_requests_rejected_or_served(patient: RunningServer) -> None:
    """A rejected body was kept alive by reference cycles until a full collection (150 MB a request);
    after any mix of max-size requests the worker is back within 50 MB of where it started."""
    server = patient
    bodies = max_size_bodies(6 * 1024 * 1024)
    assert all(len(b) <= 6 * 1024 * 1024 for b in bodies.values())
    headers = {"Authorization": f"Bearer {PRIMARY_KEY}", "Content-Type": "application/json"}
    before = rss_mb(server.process.pid)
    expected = {"objects": 400, "empty rows": 400, "valid": 200}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        for kind, body in bodies.items():
            for _ in range(6):
                assert http.post("/score", content=body).status_code == expected[kind], kind
    after = rss_mb(server.process.pid)
    assert after - before < 50, f"the worker grew from {before:.0f} MB to {after:.0f} MB"
