"""The lean ASGI front: auth, limits, metrics and access logs for every request; inference routes.

Inference requests are answered here without per-request framework work (no regex routing, no
pydantic models, no Request objects); everything else falls through to FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import onnxruntime as ort

from serving.admission import Admission
from serving.auth import KeyCheck
from serving.errors import (
    MethodNotAllowed,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    ScoringTimeout,
)
from serving.logs import AccessLog, request_id_from
from serving.metrics import Metrics
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

# Routes anyone may call, also when keys are configured: health probes, metrics and the API description.
OPEN_PATHS = frozenset(
    {
        "/",
        "/ping",
        "/metrics",
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
V2_MODELS = "/v2/models/"


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or (path.startswith(V2_MODELS) and path.endswith("/ready"))


def route_label(path: str) -> str:
    """A bounded set of metric labels: fixed paths as they are, model paths as templates."""
    if path in OPEN_PATHS or path in ("/score", "/invocations"):
        return path
    if path.startswith(V2_MODELS):
        rest = path[len(V2_MODELS) :].split("/")
        template = "/v2/models/{name}" + ("/versions/{version}" if len(rest) >= 3 and rest[1] == "versions" else "")
        tail = rest[-1] if len(rest) in (2, 4) else ""
        return template + (f"/{tail}" if tail in ("infer", "ready") else "")
    return "other"


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


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()
    rows: int = 0
    scoring_seconds: float = 0.0


@dataclass
class Call:
    """One inference request as the worker thread sees it."""

    body: bytes
    headers: dict[bytes, bytes]
    runtime: ModelRuntime
    run_options: ort.RunOptions = field(default_factory=ort.RunOptions)


Handler = Callable[[Call], Reply]


class InferenceFront:
    """ASGI app serving the inference routes itself and delegating the rest to `fallback`."""

    def __init__(
        self, settings: Settings, state: ServerState, fallback: ASGIApp, metrics: Metrics, access_log: AccessLog
    ) -> None:
        self.settings = settings
        self.state = state
        self.fallback = fallback
        self.metrics = metrics
        self.access_log = access_log
        self.keys = KeyCheck(settings.api_keys)
        self.admission = Admission(
            settings.max_concurrent_requests, settings.max_queue_size, settings.max_queue_wait_ms / 1000
        )
        self.scoring_timeout = settings.scoring_timeout_ms / 1000
        self.executor = ThreadPoolExecutor(max_workers=settings.max_concurrent_requests, thread_name_prefix="infer")
        self.exact_routes: dict[str, Handler] = {"/score": self.score, "/invocations": self.invocations}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = request_id_from(headers.get(b"x-request-id"))
        path: str = scope["path"]
        route = route_label(path)
        try:
            if self.keys.enabled and not is_open_path(path):
                self.keys.verify(headers.get(b"authorization"))
            handler = self._route(path)
            if handler is None:
                status = await self._delegate(scope, receive, send, request_id)
                self._record(request_id, scope["method"], route, path, status, started, 0)
                return
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {path}; use POST")
            reply = await self._serve(handler, headers, receive, route)
        except RequestError as error:
            if isinstance(error, (Overloaded, ScoringTimeout, PayloadTooLarge)) or error.status == 401:
                self.metrics.rejections.labels(getattr(error, "reason", error.code)).inc()
            reply = Reply(error.status, jsonbody.dumps(error.body()), JSON, tuple(error.headers()))
        except Exception:
            log.exception("unexpected error on %s (request %s)", route, request_id)
            reply = Reply(500, b'{"error":"internal server error","code":"internal"}')
        await _send_reply(send, reply, request_id)
        self._record(request_id, scope["method"], route, path, reply.status, started, reply.rows)

    def _record(
        self, request_id: str, method: str, route: str, path: str, status: int, started: float, rows: int
    ) -> None:
        seconds = time.perf_counter() - started
        self.metrics.observe_request(route, status, seconds)
        self.access_log.write(request_id, method, route, path[:200], status, seconds, rows)

    async def _delegate(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        status = 500
        request_id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), request_id_header]
            await send(message)

        await self.fallback(scope, receive, send_with_id)
        return status

    def _route(self, path: str) -> Handler | None:
        handler = self.exact_routes.get(path)
        if handler is not None:
            return handler
        if path.startswith(V2_MODELS) and path.endswith("/infer"):
            parts = path[len(V2_MODELS) : -len("/infer")].split("/")
            if len(parts) == 1 and parts[0]:
                return self._v2_infer(parts[0], None)
            if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
                return self._v2_infer(parts[0], parts[2])
        return None

    async def _serve(self, handler: Handler, headers: dict[bytes, bytes], receive: Receive, route: str) -> Reply:
        runtime = self.state.require_runtime()
        body = await _read_body(headers, receive, self.settings.max_body_bytes)
        await self.admission.acquire()
        call = Call(body, headers, runtime)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Future[Reply] | None] = loop.create_future()

        def finished(job: asyncio.Future[Reply]) -> None:
            # The slot frees only when the thread is really done, so at most N run at once.
            self.admission.release()
            if not job.cancelled():
                job.exception()  # retrieved here, also when a timeout already answered
            if not outcome.done():
                outcome.set_result(job)

        def expire() -> None:
            call.run_options.terminate = True  # onnxruntime stops between graph nodes
            if not outcome.done():
                outcome.set_result(None)

        # Parsing, inference and encoding all run off the event loop: big bodies must not stall it.
        job = loop.run_in_executor(self.executor, _timed, handler, call)
        job.add_done_callback(finished)
        timer = loop.call_later(self.scoring_timeout, expire)
        done = await outcome
        timer.cancel()
        if done is None:
            raise ScoringTimeout(f"scoring took longer than {self.settings.scoring_timeout_ms} ms")
        reply = done.result()
        self.metrics.observe_scoring(route, reply.rows, reply.scoring_seconds)
        return reply

    # Handlers run in a worker thread: plain functions of one Call.

    def score(self, call: Call) -> Reply:
        rows, method = azureml.parse_score(call.body, call.runtime, self.settings.max_rows)
        prediction = jsonbody.predict(call.runtime, rows, method, call.run_options)
        return Reply(200, jsonbody.predictions_body(call.runtime, prediction, method), rows=len(rows))

    def invocations(self, call: Call) -> Reply:
        headers = call.headers
        as_csv = sagemaker.wants_csv(headers.get(b"accept", b"").decode("latin-1"))
        rows, method = sagemaker.parse_invocation(
            call.body,
            headers.get(b"content-type", b"").decode("latin-1"),
            headers.get(b"x-amzn-sagemaker-custom-attributes", b"").decode("latin-1"),
            call.runtime,
            self.settings.max_rows,
        )
        prediction = jsonbody.predict(call.runtime, rows, method, call.run_options)
        if as_csv:
            return Reply(200, sagemaker.csv_body(prediction, method), CSV, rows=len(rows))
        return Reply(200, jsonbody.predictions_body(call.runtime, prediction, method), rows=len(rows))

    def _v2_infer(self, name: str, version: str | None) -> Handler:
        def infer(call: Call) -> Reply:
            check_model_address(call.runtime, name, version)
            rows, names, request_id = v2.parse_infer(call.body, call.runtime, self.settings.max_rows)
            results = call.runtime.run_outputs(rows, names, call.run_options)
            return Reply(200, v2.infer_body(call.runtime, names, results, request_id), rows=len(rows))

        return infer

    def sample_gauges(self) -> None:
        self.metrics.in_flight.set(self.admission.running)
        self.metrics.queued.set(self.admission.queued)


def _timed(handler: Handler, call: Call) -> Reply:
    started = time.perf_counter()
    reply = handler(call)
    reply.scoring_seconds = time.perf_counter() - started
    return reply


def check_model_address(runtime: ModelRuntime, name: str, version: str | None) -> None:
    if name != runtime.name:
        raise NotFound(f"model '{name:.64}' not found; this server serves '{runtime.name}'")
    if version is not None and version != runtime.version:
        raise NotFound(
            f"version '{version:.64}' of model '{name}' not found; this server serves version '{runtime.version}'"
        )


class ClientDisconnected(RequestError):
    status = 499
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("client closed the connection")


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


async def _send_reply(send: Send, reply: Reply, request_id: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", reply.content_type),
                (b"content-length", str(len(reply.body)).encode()),
                (b"x-request-id", request_id.encode()),
                *reply.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})
