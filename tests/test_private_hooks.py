"""The four places that lean on a library's private parts (kept because the benchmark or the API
leaves no public way), each checked against the pinned version so an upgrade that breaks one fails
here, loudly, instead of silently changing behaviour:

- serving/onnx_fastpath.py calls `InferenceSession._sess.run` (skips per-call feed checks: single-row latency);
- serving/transport.py subclasses uvicorn's `HttpToolsProtocol` (deadlines, connection cap, one write) and
  answers a whole response as `RequestResponseCycle.send` would (its `send_whole`);
- serving/uvicorn_hooks.py finds uvicorn's `Server` behind its SIGTERM handler (`__self__` of the bound
  method) and builds a connection's protocol as uvicorn's accept path does (the drain takes queued ones);
- stacks/engine_config.py lists the engine's config through `pulumi.runtime.config.CONFIG` (unknown keys).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import signal
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pulumi
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from serving.onnx_fastpath import session_run
from serving.runtime import ModelRuntime
from serving.transport import CoalescingHttpToolsProtocol
from serving.uvicorn_hooks import http_protocol_factory, server_behind_sigterm

DEMO = Path(__file__).resolve().parents[1] / "serving" / "model" / "model.onnx"


def test_the_runtime_uses_onnxruntimes_binding_and_it_answers_like_the_public_run() -> None:
    runtime = ModelRuntime(DEMO)
    session = ort.InferenceSession(str(DEMO), providers=["CPUExecutionProvider"])
    binding = getattr(getattr(session, "_sess", None), "run", None)
    assert binding is not None, "onnxruntime dropped InferenceSession._sess.run: serving/runtime.py falls back"
    assert session_run(session).__self__ is not session, "serving/onnx_fastpath.py falls back to the public run"  # type: ignore[attr-defined]
    assert runtime._run.__self__ is not runtime._session, "the runtime does not use serving/onnx_fastpath.py"  # type: ignore[attr-defined]
    rows = np.zeros((2, runtime.n_features), dtype=np.float32)
    names = [o.name for o in session.get_outputs()]
    feed = {session.get_inputs()[0].name: rows}
    public = session.run(names, feed)
    private = binding(names, feed, None)
    for a, b in zip(public, private, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_uvicorns_protocol_still_has_what_the_transport_overrides_and_reads() -> None:
    for method in ("connection_made", "on_message_begin", "on_headers_complete",
                   "on_message_complete", "on_response_complete", "shutdown"):  # fmt: skip
        assert callable(getattr(HttpToolsProtocol, method, None)), f"uvicorn's HttpToolsProtocol lost {method}"
        assert method in vars(CoalescingHttpToolsProtocol), f"serving/transport.py no longer overrides {method}"
    source = inspect.getsource(HttpToolsProtocol.__init__)
    for attribute in ("self.connections", "self.transport", "self.loop", "self.cycle", "self.server_state",
                      "self.timeout_keep_alive", "self.pipeline", "self.flow"):  # fmt: skip
        assert attribute in source + inspect.getsource(HttpToolsProtocol.connection_made), (
            f"uvicorn's HttpToolsProtocol no longer sets {attribute}, which serving/transport.py reads"
        )


# sha256 of uvicorn 0.54.0's HttpToolsProtocol.on_response_complete, which serving/transport.py copies
# less its keep-alive timer (the deadline sweep closes idle connections instead).
UVICORN_ON_RESPONSE_COMPLETE = "5684fd801d0683ac20b9144e8eed8327e445236d5c1d16a02253dfb3a35b9a75"


def assert_source_unchanged(function: object, expected_sha256: str, what_to_update: str) -> None:
    source = textwrap.dedent(inspect.getsource(function))  # type: ignore[arg-type]
    assert hashlib.sha256(source.encode()).hexdigest() == expected_sha256, (
        f"uvicorn changed {function.__qualname__}: bring {what_to_update} up to date, "  # type: ignore[attr-defined]
        "then record the new hash here\n" + source
    )


def test_uvicorns_on_response_complete_is_the_one_the_transport_copies() -> None:
    assert_source_unchanged(
        HttpToolsProtocol.on_response_complete,
        UVICORN_ON_RESPONSE_COMPLETE,
        "the copy in serving/transport.py (keeping the keep-alive timer out)",
    )
    for name in ("_unset_keepalive_if_required", "_start_asgi_task"):
        assert callable(getattr(HttpToolsProtocol, name, None)), f"uvicorn's HttpToolsProtocol lost {name}"


# sha256 of uvicorn 0.54.0's RequestResponseCycle.send, whose start-then-last-body path
# serving/transport.py's send_whole does in one write.
UVICORN_CYCLE_SEND = "cfc84491029529db3be8833cf904f97a3cb18e0a7fd24199b43e694d59617a00"


def test_uvicorns_send_is_the_one_send_whole_stands_in_for() -> None:
    assert_source_unchanged(
        RequestResponseCycle.send,
        UVICORN_CYCLE_SEND,
        "serving/transport.py's send_whole (the state it sets, what it writes)",
    )
    init = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.flow", "self.access_log", "self.default_headers", "self.message_event", "self.on_response",
                      "self.disconnected", "self.keep_alive", "self.waiting_for_100_continue"):  # fmt: skip
        assert attribute in init, f"uvicorn's RequestResponseCycle no longer sets {attribute}, which send_whole uses"


def test_uvicorns_request_cycle_still_has_the_state_the_deadlines_read() -> None:
    source = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.more_body", "self.response_started", "self.response_complete"):
        assert attribute in source, (
            f"uvicorn's RequestResponseCycle no longer sets {attribute}, which serving/transport.py reads"
        )


def test_uvicorns_sigterm_handler_is_a_method_of_its_server() -> None:
    server = uvicorn.Server(uvicorn.Config(app=lambda scope, receive, send: None))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with server.capture_signals():
            assert server_behind_sigterm() is server, "serving/uvicorn_hooks.py cannot find uvicorn's Server"
        assert server_behind_sigterm() is None
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_protocol_built_as_uvicorn_builds_one_serves_a_request() -> None:
    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    config = uvicorn.Config(app=app, http="httptools", lifespan="off", log_level="error")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # as Server.startup sets it

    class Transport(asyncio.Transport):
        written = b""

        def write(self, data: bytes | bytearray | memoryview) -> None:
            Transport.written += bytes(data)

        def get_extra_info(self, name: str, default: object = None) -> object:
            return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

        def is_closing(self) -> bool:
            return False

    async def exchange() -> bytes:
        protocol = http_protocol_factory(server)()
        protocol.connection_made(Transport())
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[attr-defined]
        for _ in range(50):
            if Transport.written:
                break
            await asyncio.sleep(0.01)
        return Transport.written

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(exchange()).startswith(b"HTTP/1.1 204"), "serving/uvicorn_hooks.py"
    finally:
        loop.close()


def test_pulumis_config_holds_what_set_all_config_sets() -> None:
    from stacks.engine_config import namespace_values

    pulumi.runtime.set_all_config({"mlserve:probe": "1", "mlserve:where": "westeurope", "aws:region": "eu-west-1"})
    try:
        listed = namespace_values("mlserve")
        assert listed == {"probe": 1, "where": "westeurope"}, "stacks/engine_config.py cannot list the stack's keys"
    finally:
        pulumi.runtime.set_all_config({})
