"""The lean ASGI front: auth, bounded body reading and the inference routes, before FastAPI.

Inference requests are answered here without per-request framework work (no routing tables of
regexes, no pydantic models, no Request objects); everything else falls through to FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from serving.auth import KeyCheck
from serving.errors import MethodNotAllowed, NotFound, NotReady, PayloadTooLarge, RequestError
from serving.protocols import azureml, jsonbody, sagemaker, v2
from serving.runtime import ModelRuntime
from serving.settings import Settings

log = logging.getLogger("serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
CSV = b"text/csv"

# Routes anyone may call, also when keys are configured: health probes and the API description.
OPEN_PATHS = frozenset(
    {
        "/",
        "/ping",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/swagger.json",
    }
)


@dataclass
class ServerState:
    """What the running server knows; `runtime` is set once the model is loaded and warm."""

    runtime: ModelRuntime | None = None
    draining: bool = False

    @property
    def ready(self) -> bool:
        return self.runtime is not None and not self.draining

    def require_runtime(self) -> ModelRuntime:
        if self.runtime is None:
            raise NotReady("model is still loading; retry shortly")
        return self.runtime


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


Handler = Callable[[bytes, dict[bytes, bytes], ModelRuntime], Reply]


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or (path.startswith("/v2/models/") and path.endswith("/ready"))


class InferenceFront:
    """ASGI app serving the inference routes itself and delegating the rest to `fallback`."""

    def __init__(self, settings: Settings, state: ServerState, fallback: ASGIApp) -> None:
        self.settings = settings
        self.state = state
        self.fallback = fallback
        self.keys = KeyCheck(settings.api_keys)
        self.executor = ThreadPoolExecutor(max_workers=settings.max_concurrent_requests, thread_name_prefix="infer")
        self.exact_routes: dict[str, Handler] = {"/score": self.score, "/invocations": self.invocations}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        path: str = scope["path"]
        try:
            if self.keys.enabled and not is_open_path(path):
                self.keys.verify(_headers(scope).get(b"authorization"))
            handler = self._route(path)
            if handler is None:
                await self.fallback(scope, receive, send)
                return
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {path}; use POST")
            reply = await self._serve(handler, scope, receive)
        except RequestError as error:
            reply = Reply(error.status, jsonbody.dumps(error.body()), JSON, tuple(error.headers()))
        except Exception:
            log.exception("unexpected error on %s", path)
            reply = Reply(500, b'{"error":"internal server error","code":"internal"}')
        await _send_reply(send, reply)

    def _route(self, path: str) -> Handler | None:
        handler = self.exact_routes.get(path)
        if handler is not None:
            return handler
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            parts = path[len("/v2/models/") : -len("/infer")].split("/")
            if len(parts) == 1 and parts[0]:
                return self._v2_infer(parts[0], None)
            if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
                return self._v2_infer(parts[0], parts[2])
        return None

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive) -> Reply:
        runtime = self.state.require_runtime()
        headers = _headers(scope)
        body = await _read_body(headers, receive, self.settings.max_body_bytes)
        loop = asyncio.get_running_loop()
        # Parsing, inference and rendering all run off the event loop: big bodies must not stall it.
        return await loop.run_in_executor(self.executor, handler, body, headers, runtime)

    # Handlers run in the executor: plain functions of (body, headers, runtime).

    def score(self, body: bytes, _headers: dict[bytes, bytes], runtime: ModelRuntime) -> Reply:
        rows, method = azureml.parse_score(body, runtime, self.settings.max_rows)
        prediction = jsonbody.predict(runtime, rows, method)
        return Reply(200, jsonbody.predictions_body(runtime, prediction, method))

    def invocations(self, body: bytes, headers: dict[bytes, bytes], runtime: ModelRuntime) -> Reply:
        as_csv = sagemaker.wants_csv(headers.get(b"accept", b"").decode("latin-1"))
        rows, method = sagemaker.parse_invocation(
            body,
            headers.get(b"content-type", b"").decode("latin-1"),
            headers.get(b"x-amzn-sagemaker-custom-attributes", b"").decode("latin-1"),
            runtime,
            self.settings.max_rows,
        )
        prediction = jsonbody.predict(runtime, rows, method)
        if as_csv:
            return Reply(200, sagemaker.csv_body(prediction, method), CSV)
        return Reply(200, jsonbody.predictions_body(runtime, prediction, method))

    def _v2_infer(self, name: str, version: str | None) -> Handler:
        def infer(body: bytes, _headers: dict[bytes, bytes], runtime: ModelRuntime) -> Reply:
            check_model_address(runtime, name, version)
            rows, names, request_id = v2.parse_infer(body, runtime, self.settings.max_rows)
            results = runtime.run_outputs(rows, names)
            return Reply(200, v2.infer_body(runtime, names, results, request_id))

        return infer


def check_model_address(runtime: ModelRuntime, name: str, version: str | None) -> None:
    if name != runtime.name:
        raise NotFound(f"model '{name:.64}' not found; this server serves '{runtime.name}'")
    if version is not None and version != runtime.version:
        raise NotFound(
            f"version '{version:.64}' of model '{name}' not found; this server serves version '{runtime.version}'"
        )


async def _read_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
    """Read at most `limit` bytes; refuse by Content-Length first, and count chunked bodies as they come."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClientDisconnected(RequestError):
    status = 499
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("client closed the connection")


async def _send_reply(send: Send, reply: Reply) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", reply.content_type),
                (b"content-length", str(len(reply.body)).encode()),
                *reply.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})
