"""One write per response: the protocol joins uvicorn's status line, headers and body."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from serving.transport import WHOLE_RESPONSE, CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """Stands in for the socket transport and remembers every write it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _next_loop_step() -> None:
    await asyncio.sleep(0)


def on_private_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test run on a loop of its own: the process-wide loop is left alone for the Pulumi tests."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(test(*args, **kwargs))
        finally:
            loop.close()

    return run


@on_private_loop
async def test_writes_of_one_step_leave_together_and_in_order() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"body"))
    assert real.writes == []
    await _next_loop_step()
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]

    transport.write(b"second")
    await _next_loop_step()
    assert real.writes[1:] == [b"second"], "a later step's write is not held back"


@on_private_loop
async def test_large_bodies_are_not_joined_but_stay_whole() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    body = bytes(range(256)) * 1024
    transport.write(b"head")
    transport.write(body)
    await _next_loop_step()
    assert b"".join(real.writes) == b"head" + body


@on_private_loop
async def test_close_sends_what_is_held_first_and_a_gone_peer_drops_it() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert real.writes == [b"last words"]
    assert real.closed
    await _next_loop_step()  # the scheduled flush finds nothing left

    gone = RecordingTransport()
    transport = CoalescingTransport(gone, asyncio.get_running_loop())
    transport.write(b"too late")
    gone.closed = True
    await _next_loop_step()
    assert gone.writes == []


@pytest.mark.parametrize("streamed", [False, True])
@on_private_loop
async def test_uvicorn_response_leaves_in_one_write(streamed: bool) -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await receive()
        headers = [(b"content-type", b"text/plain")] + ([] if streamed else [(b"content-length", b"5")])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})

    config = uvicorn.Config(app, http=CoalescingHttpToolsProtocol, ws="none", lifespan="off", log_level="error")
    config.load()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    real = RecordingTransport()
    protocol.connection_made(real)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    for _ in range(5):
        await _next_loop_step()

    assert len(real.writes) == 1
    response = real.writes[0]
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"5\r\nhello\r\n0\r\n\r\n" if streamed else b"\r\n\r\nhello")


def whole_response_app(close: bool = False, body: bytes = b"hello") -> Any:
    """Answers through the scope's whole-response extension where it can, else with the two ASGI messages."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        whole = scope.get("extensions", {}).get(WHOLE_RESPONSE)
        app.used_whole = whole is not None and whole["send"](send, 200, headers, body, close)  # type: ignore[attr-defined]
        if not app.used_whole:  # type: ignore[attr-defined]
            if close:
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    return app


async def exchange(app: Any, requests: bytes, steps: int = 5) -> tuple[RecordingTransport, Any]:
    """`requests` sent on one connection to `app` behind the server's protocol; what it wrote."""
    config = uvicorn.Config(
        app, http=CoalescingHttpToolsProtocol, ws="none", lifespan="off", log_level="error", access_log=False
    )
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Sun, 06 Dec 2026 12:00:00 GMT")]
    protocol = CoalescingHttpToolsProtocol(config, state, {}, _loop=asyncio.get_running_loop())
    real = RecordingTransport()
    protocol.connection_made(real)
    protocol.data_received(requests)
    for _ in range(steps):
        await _next_loop_step()
    return real, protocol


GET = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


@pytest.mark.parametrize("close", [False, True])
@on_private_loop
async def test_a_whole_response_leaves_in_one_write_exactly_as_uvicorns_messages_would_write_it(close: bool) -> None:
    whole = whole_response_app(close)
    real, _ = await exchange(whole, GET)
    assert whole.used_whole
    messages = whole_response_app(close)

    async def without_the_extension(scope: dict, receive: Any, send: Any) -> None:
        await messages({**scope, "extensions": {}}, receive, send)

    reference, _ = await exchange(without_the_extension, GET)
    assert not messages.used_whole
    assert len(real.writes) == 1
    assert real.writes == reference.writes
    assert real.writes[0].startswith(b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 12:00:00 GMT\r\n")
    assert real.writes[0].endswith(
        b"content-length: 5\r\n" + (b"connection: close\r\n" if close else b"") + b"\r\nhello"
    )
    assert real.closed is close, "close=True ends the connection after the response"


@on_private_loop
async def test_kept_alive_and_pipelined_requests_each_get_their_whole_response_in_order() -> None:
    bodies = iter([b"first", b"second", b"third"])

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await whole_response_app(body=next(bodies))(scope, receive, send)

    real, protocol = await exchange(app, GET * 3, steps=15)
    joined = b"".join(real.writes)
    assert joined.count(b"HTTP/1.1 200 OK") == 3
    assert joined.index(b"first") < joined.index(b"second") < joined.index(b"third")
    assert not real.closed
    assert protocol.server_state.total_requests == 3


@on_private_loop
async def test_a_send_wrapped_by_a_middleware_gets_the_messages_it_wraps() -> None:
    inner = whole_response_app()
    seen: list[str] = []

    async def middleware(scope: dict, receive: Any, send: Any) -> None:
        async def wrapped(message: dict) -> None:
            seen.append(message["type"])
            await send(message)

        await inner(scope, receive, wrapped)

    real, _ = await exchange(middleware, GET)
    assert not inner.used_whole
    assert seen == ["http.response.start", "http.response.body"]
    assert b"".join(real.writes).endswith(b"\r\n\r\nhello")


@on_private_loop
async def test_with_uvicorns_access_log_on_the_messages_are_used_so_it_still_logs() -> None:
    app = whole_response_app()
    config = uvicorn.Config(app, http=CoalescingHttpToolsProtocol, ws="none", lifespan="off", log_level="error")
    config.load()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    real = RecordingTransport()
    protocol.connection_made(real)
    protocol.data_received(GET)
    for _ in range(5):
        await _next_loop_step()
    assert not app.used_whole
    assert b"".join(real.writes).endswith(b"\r\n\r\nhello")


@on_private_loop
async def test_a_head_request_and_a_large_body_still_get_what_uvicorn_would_send() -> None:
    head = whole_response_app()
    real, _ = await exchange(head, b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\n")
    assert not head.used_whole, "HEAD is left to uvicorn, which sends the headers without the body"
    assert b"".join(real.writes).endswith(b"content-length: 5\r\n\r\n")

    large = bytes(range(256)) * 1024
    app = whole_response_app(body=large)
    real, _ = await exchange(app, GET)
    assert app.used_whole
    response = b"".join(real.writes)
    assert response.endswith(b"\r\n\r\n" + large)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
