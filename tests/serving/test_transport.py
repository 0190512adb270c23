"""One write per response: the protocol joins uvicorn's status line, headers and body."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from serving.transport import CoalescingHttpToolsProtocol, CoalescingTransport


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
