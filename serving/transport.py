"""uvicorn's httptools protocol: each response in one write, and no fresh connection dropped at shutdown.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, then the
body on `http.response.body`: two system calls and two TCP segments per small response, and over
loopback the receiving side of each segment is processed on the sending core too. Holding writes
until the end of the current event-loop step joins them without delaying anything: what an app
sends in one step leaves in the same loop iteration.

An app that has the whole response at once (the inference front) skips even the two ASGI messages
and uvicorn's per-header checks: the scope's `mlserve.whole_response` extension takes status line,
headers and body in one call (bench/README.md).
"""

from __future__ import annotations

import asyncio
import functools
import math
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

# Above this, joining would copy a large body only to save one system call.
_JOIN_LIMIT = 64 * 1024


class CoalescingTransport(asyncio.Transport):
    """Gathers the writes of one event-loop step and hands them to the real transport together."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data) if not isinstance(data, bytes) else data)
        self._held_bytes += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        size, self._held_bytes = self._held_bytes, 0
        if self._transport.is_closing():
            return  # the peer is gone; the real transport would drop (and warn about) the data too
        if len(held) == 1:
            self._transport.write(held[0])
        elif size <= _JOIN_LIMIT:
            self._transport.write(b"".join(held))
        else:
            self._transport.writelines(held)

    def close(self) -> None:
        self.flush()  # close() still sends what the transport buffered, so hand it over first
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._held_bytes = 0
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


WHOLE_RESPONSE = "mlserve.whole_response"


def send_whole(
    send: Callable[..., Awaitable[None]], status: int, headers: list[tuple[bytes, bytes]], body: bytes, close: bool
) -> bool:
    """`scope["extensions"]["mlserve.whole_response"]["send"](send, status, headers, body, close)`: one write.

    `send` is the `send` the app was called with. Does what uvicorn's `RequestResponseCycle.send`
    does for a start message followed by the last body message, less its header checks: the
    caller's headers are its own (lower-case names, values without control characters) and include
    `content-length`. `close` ends the connection after the response. Returns False, having sent
    nothing, where the messages must be sent instead: `send` is not uvicorn's own (a middleware
    wraps it), a response already begun, a HEAD request, writing paused by a slow reader (uvicorn
    waits for it), uvicorn's access log on. tests/test_private_hooks.py fails if uvicorn's send changes.

    The write is still held to the end of the loop step, like every other: written at once, the
    server answered a fifth fewer single-row requests on one core, for all its fewer instructions
    (bench/README.md).
    """
    # The cycle is found through `send` rather than held by the scope: scope -> cycle -> scope would
    # be a reference cycle per request, left for the garbage collector (measured: 7,000 instructions).
    cycle = getattr(send, "__self__", None)
    if not isinstance(cycle, RequestResponseCycle):
        return False
    if cycle.response_started or cycle.flow.write_paused or cycle.access_log or cycle.scope["method"] == "HEAD":
        return False
    if cycle.disconnected:
        return True  # as uvicorn's send: nobody to send it to
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if close:
        cycle.keep_alive = False
    lines = [*map(b": ".join, cycle.default_headers), *map(b": ".join, headers)]
    if not cycle.keep_alive:
        lines.append(b"connection: close")
    lines += (b"", b"")
    transport = cycle.transport  # the CoalescingTransport: it joins the two writes (or not, for large bodies)
    transport.write(STATUS_LINE[status] + b"\r\n".join(lines))
    transport.write(body)
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        transport.close()
    cycle.on_response()
    return True


# An ASGI extension's value is a dict of its own data (the ASGI spec, "Extensions").
_WHOLE_RESPONSE_EXTENSION: dict[object, object] = {"send": send_whole}

# How long a connection accepted just before shutdown may take to send its first request.
FRESH_CONNECTION_GRACE_SECONDS = 1.0

TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n"
    b"content-type: application/json\r\ncontent-length: 58\r\n\r\n"
    b'{"error":"too many open connections","code":"overloaded"}\n'
)


def head_too_large(max_bytes: int) -> bytes:
    """The whole 431 response, with the body every request error has (serving/errors.py)."""
    from serving.errors import HeadersTooLarge
    from serving.protocols.jsonbody import dumps

    body = dumps(HeadersTooLarge(f"request line and headers exceed {max_bytes} bytes").body()) + b"\n"
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )


class Limits(NamedTuple):
    header_seconds: float
    body_seconds: float
    max_connections: int
    max_header_bytes: int


@functools.cache
def limits() -> Limits:
    """Read once per process from the same settings as the app (a worker's: the parent's, handed over)."""
    from serving.worker_settings import connection_limit, handed

    settings = handed()
    if settings is None:
        from serving.settings import load_settings

        settings = load_settings()
    return Limits(
        settings.header_timeout_seconds,
        settings.body_timeout_seconds,
        connection_limit(settings),
        settings.max_header_bytes,
    )


# Deadlines are checked this often: a slow or idle connection is closed at most this late.
SWEEP_SECONDS = 0.25


class DeadlineSweep:
    """One timer per worker that closes connections past their deadline.

    A timer per connection would be re-armed three times per request (headers, body, idle), each
    arming and cancelling a libuv timer: about 4 µs of a 50 µs request (measured). A deadline is a
    float on the connection instead, and this sweep walks the worker's connections four times a
    second while it has any.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.loop = loop
        self.connections = connections
        self.handle: asyncio.TimerHandle | None = None

    def ensure_running(self) -> None:
        if self.handle is None:
            self.handle = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        for connection in list(self.connections):
            if isinstance(connection, CoalescingHttpToolsProtocol) and connection.deadline_at <= now:
                connection.timed_out()
        if self.connections:
            self.ensure_running()


# uvicorn's per-server state (its `ServerState`) -> that server's sweep.
_sweeps: weakref.WeakKeyDictionary[Any, DeadlineSweep] = weakref.WeakKeyDictionary()

NO_DEADLINE = math.inf


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.run(..., http=CoalescingHttpToolsProtocol)`: httptools, one write per response.

    Deadlines are absolute (trickling a byte at a time does not extend them): a new connection's
    headers within `header_seconds` (else 408), then the body within `body_seconds` (else 408);
    between requests, a kept-alive connection is closed after the keep-alive timeout, and its next
    request's headers are due `header_seconds` after the last response.

    At shutdown uvicorn closes every connection without a request in progress. For a connection
    accepted a moment before the listener closed, that drops the request its client has already
    sent (measured: one lost request per busy client). Such a connection gets a short grace to send
    it instead; the draining server answers it with `Connection: close`.

    A request's line and headers are bounded (`max_header_bytes`): httptools holds an unfinished
    header in memory however long it grows (measured: 100 connections sending 20 MB headers held
    2.2 GB), so past the bound the connection is answered 431 and closed. How many header lines,
    and which may not repeat, the front checks (serving/front.py).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.requests_begun = 0
        self.limits = limits()
        # Bytes received since the current request's head began (None: its head is complete). Whole
        # reads are counted, so a read that also holds the body can overstate it: past the bound, the
        # head's exact size is worked out from that read (_head_fits_after).
        self.head_bytes: int | None = 0
        # Since when it owes us a request (opened, or last answered), and when it must have sent it.
        self.waiting_since = self.loop.time()
        self.deadline_at = self.waiting_since + self.limits.header_seconds
        super().connection_made(CoalescingTransport(transport, self.loop))
        if len(self.connections) > self.limits.max_connections and not self._evict_oldest_waiting():
            # Refused at once, before any buffer is given to it: the worker keeps its file descriptors.
            self.transport.write(TOO_MANY)
            self.transport.close()
            return
        sweep = _sweeps.get(self.server_state)
        if sweep is None:
            sweep = _sweeps[self.server_state] = DeadlineSweep(self.loop, self.connections)
        sweep.ensure_running()

    def _evict_oldest_waiting(self) -> bool:
        """At the cap, the connection that has owed a request longest makes room.

        Connections held open to exhaust the worker are exactly those, so a new one (a health
        probe, a client) gets in; the evicted one gets the 408 its deadline would have given it.
        """
        waiting = [
            c
            for c in self.connections
            if c is not self
            and isinstance(c, CoalescingHttpToolsProtocol)
            and (c.cycle is None or c.cycle.response_complete)
            and not c.transport.is_closing()
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.waiting_since)
        oldest.deadline_at = NO_DEADLINE
        oldest.transport.write(TIMED_OUT)
        oldest.transport.close()
        return True

    def timed_out(self) -> None:
        """Past the deadline: 408 unless a response was begun (or the connection was idle), then close."""
        self.deadline_at = NO_DEADLINE
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(TIMED_OUT)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        head_bytes = self.head_bytes
        if head_bytes is None:
            super().data_received(data)
            return
        self.head_bytes = head_bytes = head_bytes + len(data)
        if head_bytes > self.limits.max_header_bytes and not self._head_fits_after(data):
            self.refuse_head()
            return
        super().data_received(data)

    def _head_fits_after(self, data: bytes) -> bool:
        """Whether the head ends within the bound: only asked once the bytes received exceed it."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False  # still unfinished beyond the bound: nothing more is read
        return self.head_bytes - len(data) + end + 4 <= self.limits.max_header_bytes  # type: ignore[operator]

    def refuse_head(self) -> None:
        self.head_bytes = None
        self.deadline_at = NO_DEADLINE
        if not self.transport.is_closing():
            self.transport.write(head_too_large(self.limits.max_header_bytes))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.requests_begun += 1
        # An idle connection closes after the keep-alive timeout; one that has begun a request has
        # until its header deadline, counted from the last response (or, pipelined behind a request
        # still being answered, from now).
        pipelined = self.cycle is not None and not self.cycle.response_complete
        self.deadline_at = (self.loop.time() if pipelined else self.waiting_since) + self.limits.header_seconds
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # else an upgrade, answered by uvicorn
            # Before the request's task first runs (at the next loop step), so the app sees it.
            self.scope["extensions"] = {WHOLE_RESPONSE: _WHOLE_RESPONSE_EXTENSION}
        # A pipelined request waits its turn with reading paused: its body is due once it is current.
        self.deadline_at = NO_DEADLINE if self.pipeline else self.loop.time() + self.limits.body_seconds

    def on_message_complete(self) -> None:
        self.deadline_at = NO_DEADLINE  # received in full; scoring has its own timeout
        self.head_bytes = 0  # what follows is the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's own, less its keep-alive timer (one more timer per request): the sweep closes idle
        # connections. tests/test_private_hooks.py fails if uvicorn's version of this method changes.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            if cycle.more_body:  # its body is still to come, now that reading resumes
                self.deadline_at = self.loop.time() + self.limits.body_seconds
            self._start_asgi_task(cycle, app)
            return
        self.waiting_since = now = self.loop.time()
        self.deadline_at = now + min(self.timeout_keep_alive, self.limits.header_seconds)

    def shutdown(self) -> None:
        if self.cycle is None and self.requests_begun == 0:
            self.loop.call_later(FRESH_CONNECTION_GRACE_SECONDS, self._close_if_still_fresh)
            return
        super().shutdown()

    def _close_if_still_fresh(self) -> None:
        if self.requests_begun == 0 and not self.transport.is_closing():
            self.transport.close()
