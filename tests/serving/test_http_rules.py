"""What HTTP/1.1 says a server must refuse in a request's head, tried on the real transport with raw
bytes (clients such as httpx cannot send these): bounded headers, one Host, one credential, known
expectations and versions, and no redirect that a browser would follow to another host.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.conftest import PRIMARY_KEY
from tests.serving.server import RunningServer
from tests.serving.test_attacks import rss_mb

KEY = f"Authorization: Bearer {PRIMARY_KEY}\r\n".encode()
ROWS = b'{"data": [[5.0, 0.95, 10.0, 180.0, 3.0, 995.0, 2.0]]}'


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def exchange(server: RunningServer, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request (closing the connection after it); the status and the whole answer."""
    with connect(server) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


def score(extra: bytes = b"", request_line: bytes = b"POST /score HTTP/1.1") -> bytes:
    return (
        request_line + b"\r\nHost: x\r\n" + KEY + b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n" % len(ROWS) + extra
    )


def test_an_ordinary_request_is_served(server: RunningServer) -> None:
    status, answer = exchange(server, score(), ROWS)
    assert status == 200, answer


@pytest.mark.parametrize(
    ("what", "head", "status", "says"),
    [
        ("no Host", b"GET /ping HTTP/1.1\r\n", 400, b"must have a Host header"),
        ("two Hosts", b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400, b"more than one Host header"),
        ("two credentials", score(KEY), 400, b"more than one Authorization header"),
        ("an unknown expectation", score(b"Expect: 999-foo\r\n"), 417, b"only 100-continue"),
        ("HTTP/2.0 in a request line", b"GET /ping HTTP/2.0\r\nHost: x\r\n", 505, b"HTTP/2.0 is not supported"),
        ("150 header lines", b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 150, 431, b"header lines exceed"),
        ("a 1 MB header", b"GET /ping HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 1_000_000 + b"\r\n", 431, b"exceed"),
    ],
)
def test_heads_that_http_says_to_refuse(
    server: RunningServer, what: str, head: bytes, status: int, says: bytes
) -> None:
    got, answer = exchange(server, head)
    assert got == status, (what, answer[:300])
    assert says in answer, answer[:300]


def test_a_request_line_without_a_version_is_refused(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ping\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400"), answer


def test_http_1_0_needs_no_host_and_100_continue_is_honoured(server: RunningServer) -> None:
    assert exchange(server, b"GET /ping HTTP/1.0\r\n")[0] == 200
    status, answer = exchange(server, score(b"Expect: 100-continue\r\n"), ROWS)
    assert status in (100, 200), answer
    assert b"HTTP/1.1 200" in answer, answer


@pytest.mark.parametrize("path", [b"//evil.example/", b"///evil.example/", b"/%2fevil.example/", b"/\\evil.example/"])
def test_no_redirect_to_a_path_a_browser_reads_as_another_host(server: RunningServer, path: bytes) -> None:
    status, answer = exchange(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + KEY)
    assert status == 404, answer
    assert b"location" not in answer.lower()


def test_unfinished_giant_headers_are_cut_off_and_memory_stays_flat(server: RunningServer) -> None:
    """100 connections each start a 20 MB header value and never finish it: each is answered 431 once it
    passes the bound, and the worker's memory does not grow with what they send."""
    before = rss_mb(server.process.pid)
    answers: list[bytes] = []
    peak = [before]

    def attack() -> None:
        with connect(server) as sock:
            try:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(20):
                    sock.sendall(b"a" * 1_000_000)
            except OSError:
                pass  # the server closed it, as it should
            try:
                answers.append(sock.recv(65536))
            except OSError:
                answers.append(b"")

    threads = [threading.Thread(target=attack) for _ in range(100)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak.append(rss_mb(server.process.pid))
        time.sleep(0.05)
    assert max(peak) - before < 50, f"memory grew from {before:.0f} MB to {max(peak):.0f} MB"
    assert sum(a.startswith(b"HTTP/1.1 431") for a in answers) >= 90, answers[:3]
