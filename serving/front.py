"""The lean ASGI front: auth, limits, metrics and access logs for every request; the route table's
inference, health, metadata and metrics routes; the ASGI lifespan.

These are answered here without per-request framework work (no regex routing, no pydantic models, no
Request objects); everything else (the API's pages and document) falls through to FastAPI, which is
imported only then (serving/app.py).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from time import perf_counter
from typing import TYPE_CHECKING, Any

import onnxruntime as ort
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import request_head
from serving.auth import KeyCheck
from serving.errors import (
    InvalidInput,
    MethodNotAllowed,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    ScoringTimeout,
)
from serving.handlers import JSON, Call, Plan, Reply
from serving.journal import Finished, RequestJournal
from serving.logs import AccessLog, RequestIds
from serving.metrics import Metrics
from serving.pool import InferencePool
from serving.protocols import jsonbody, v2_binary
from serving.routes import TABLE, Route
from serving.runtime import ModelRuntime
from serving.state import ServerState
from serving.transport import WHOLE_RESPONSE
from serving.worker_settings import inline_scoring_budget_us

if TYPE_CHECKING:
    from serving.capture import Capture
    from serving.probes import Answer
    from serving.settings import Settings

log = logging.getLogger("serving")

_NO_EXTENSIONS: dict[str, Any] = {}


class InferenceFront:
    """ASGI app serving the route table's routes itself (inference, and the `answers` by endpoint name) and
    delegating the rest to `fallback` (FastAPI, which `serving.app` sets, built on its first request).
    `lifespan` is what runs from the server's start to its stop."""

    fallback: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[None]] | None = None

    def __init__(self, settings: Settings, state: ServerState, metrics: Metrics, access_log: AccessLog) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.journal = RequestJournal(metrics, access_log)
        self.capture: Capture | None = None  # set once the model is loaded, when capture is on
        tokens = None
        if settings.entra_tenant_id and settings.entra_audience:
            # PyJWT with cryptography is 9 MB a worker: loaded only where tokens are accepted.
            from serving.tokens import TokenCheck, TokenPolicy

            tokens = TokenCheck(
                TokenPolicy(
                    settings.entra_tenant_id,
                    settings.entra_audience,
                    settings.entra_required_role,
                    settings.entra_jwks_url,
                )
            )
        self.keys = KeyCheck(settings.api_keys, tokens)
        self.request_ids = RequestIds()
        self.pool = InferencePool(
            settings.max_concurrent_requests,
            settings.max_queue_size,
            settings.max_queue_wait_ms / 1000,
            settings.scoring_timeout_ms / 1000,
        )
        self.inline_budget = inline_scoring_budget_us(settings) / 1e6
        self.bodies = BodyBuffers(settings.max_buffered_body_bytes)
        self.inline_max_bytes = 64 * 1024
        self.max_header_count = settings.max_header_count
        self.answers: dict[str, Answer] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            else:
                await self.fallback(scope, receive, send)
            return
        started = perf_counter()
        raw_headers = scope["headers"]
        headers = dict(raw_headers)
        request_id = self.request_ids.next(headers.get(b"x-request-id"))
        path: str = scope["path"]
        found = TABLE.match(path)
        route = found[0].template if found else "other"
        # The inference path is written out flat, without helper coroutines: at over ten thousand
        # requests a second, every frame and await on the way shows in the throughput.
        try:
            version = scope.get("http_version", "1.1")
            if request_head.is_unusual(raw_headers, headers, version, self.max_header_count):
                request_head.check(raw_headers, headers, version, self.max_header_count)
            if self.keys.enabled and not (found and found[0].open):
                self.keys.verify(headers.get(b"authorization"))
            if found is None or found[0].infer is None:
                answer = self._answer(found[0] if found else None, scope)
                if answer is None:
                    status = await self._delegate(scope, receive, send, request_id)
                    self.journal.note(
                        Finished(request_id, scope["method"], route, path, status, started, perf_counter(), 0, None)
                    )
                    return
                reply = answer(found[1] if found else {})
            else:
                if scope["method"] != "POST":
                    raise MethodNotAllowed(f"{scope['method']} is not allowed on {path}; use POST")
                handler = found[0].infer(found[1])
                runtime = self.state.require_runtime()
                limit = self.settings.max_body_bytes
                declared = headers.get(b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise PayloadTooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
                message = await receive()
                if message["type"] == "http.request" and not message.get("more_body", False):
                    body = message.get("body", b"")
                    if len(body) > limit:
                        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                else:
                    body = await self.bodies.read(message, receive, limit)
                call = Call(body, headers, runtime, self.settings.max_rows)
                if len(body) <= self.inline_max_bytes and self.pool.pending == 0:
                    # A small body parses in microseconds; if scoring it is as cheap (measured at warm-up), a
                    # trip through the thread pool would cost more than the work itself.
                    plan = handler(call)
                    if runtime.cost_estimate(plan.rows) <= self.inline_budget:
                        reply = _timed(plan, None)
                    else:
                        reply = await self.pool.run(lambda run_options: _timed(plan, run_options))
                else:
                    # Large bodies are parsed off the event loop too, but a parse holds the interpreter's lock
                    # throughout, and its cost grows with the values in the body: millions of `{}` in 6 MB
                    # kept the loop (and health probes) waiting for seconds. A body with more values than
                    # the row limit can need is refused first, by counting separators (memchr speed).
                    # Binary tensor data after the JSON (the v2 extension) holds no separators to count.
                    end = v2_binary.json_end(body, headers.get(v2_binary.HEADER))
                    values = body.count(b",", 0, len(body) if end is None else end)
                    if values > self.max_values(runtime):
                        raise InvalidInput(
                            f"request body holds {values + 1} or more values, more than {self.settings.max_rows} rows "
                            f"of {runtime.n_features} features can need; send at most {self.settings.max_rows} rows"
                        )
                    reply = await self.pool.run(lambda run_options: _timed(handler(call), run_options))
        except RequestError as error:
            if isinstance(error, (Overloaded, ScoringTimeout, PayloadTooLarge)) or error.status == 401:
                self.metrics.reject(getattr(error, "reason", error.code))
            reply = Reply(error.status, jsonbody.dumps(error.body()), JSON, tuple(error.headers()))
        except Exception:
            log.exception("unexpected error on %s (request %s)", route, request_id)
            reply = Reply(500, b'{"error":"internal server error","code":"internal"}')
        body = reply.body
        response_headers = [
            (b"content-type", reply.content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *reply.headers,
        ]
        # Clients reconnect for their next request, and after the drain delay a new connection is
        # refused (safe to retry) rather than a kept-alive one closed under a request in flight.
        close = self.state.draining
        whole = scope.get("extensions", _NO_EXTENSIONS).get(WHOLE_RESPONSE)
        if whole is None or not whole["send"](send, reply.status, response_headers, body, close):
            if close:
                response_headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": reply.status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
        capture = self.capture
        if capture is not None and reply.inputs is not None:
            capture.offer(request_id, reply.inputs, reply.outputs or body)
        self.journal.note(
            Finished(
                request_id,
                scope["method"],
                route,
                path,
                reply.status,
                started,
                perf_counter(),
                reply.rows,
                reply.scoring_seconds,
            )
        )

    def _answer(self, route: Route | None, scope: Scope) -> Answer | None:
        """The front's own answer to a health, metadata or metrics request; None: FastAPI's to give (another
        method, or a query string, which FastAPI reads as parameters and validates)."""
        if route is None or route.endpoint is None or scope["method"] not in route.methods or scope.get("query_string"):
            return None
        return self.answers.get(route.endpoint)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around `lifespan`, as Starlette's router runs it."""
        started = False
        await receive()
        try:
            if self.lifespan is None:
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()
            else:
                async with self.lifespan():
                    await send({"type": "lifespan.startup.complete"})
                    started = True
                    await receive()
        except BaseException:
            text = traceback.format_exc()
            await send({"type": "lifespan.shutdown.failed" if started else "lifespan.startup.failed", "message": text})
            raise
        else:
            await send({"type": "lifespan.shutdown.complete"})

    def max_values(self, runtime: ModelRuntime) -> int:
        """Separators a valid body may hold: a name and a value per cell (records), with room to spare."""
        return 2 * self.settings.max_rows * (runtime.n_features + 1) + 1024

    async def _delegate(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        status = 500
        request_id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [request_id_header, (b"connection", b"close")] if self.state.draining else [request_id_header]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        path: str = scope["path"]
        location = _without_trailing_slash(path) if scope["method"] in ("GET", "HEAD") else None
        if location is not None:
            query = scope.get("query_string", b"")
            if query:
                location += b"?" + query
            headers = [(b"location", location), (b"content-length", b"0"), request_id_header]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return 307
        await self.fallback(scope, receive, send_with_id)
        return status

    def settle(self) -> None:
        """Bring the metrics up to date (finished requests, in-flight and queued gauges)."""
        self.journal.settle()
        self.metrics.in_flight = self.pool.running
        self.metrics.queued = self.pool.queued
        if self.capture is not None:
            self.metrics.capture_counts(self.capture.uploaded, self.capture.dropped)


def _without_trailing_slash(path: str) -> bytes | None:
    """Where `/route/` redirects: `/route`, when that is one of ours; else None (FastAPI's 404).

    Relative, because Starlette's own redirect builds an absolute URL from the Host header, which a
    client can forge; and only to a route in the table, because a path a browser reads as another
    host (`//evil.example`, `/\\evil.example`, `/%2fevil.example` once decoded) is an open redirect.
    """
    if len(path) < 2 or not path.endswith("/"):
        return None
    trimmed = path.rstrip("/")
    if TABLE.match(trimmed) is None:
        return None
    return trimmed.encode()


def _timed(plan: Plan, run_options: ort.RunOptions | None) -> Reply:
    """Predict and encode; in a worker thread or, for cheap requests, on the event loop."""
    started = perf_counter()
    reply = plan.finish(run_options)
    reply.scoring_seconds = perf_counter() - started
    return reply


class ClientDisconnected(RequestError):
    status = 499
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("client closed the connection")


class BodyBuffers:
    """Bodies that arrive in pieces, counted against the request's limit and the worker's memory.

    Without a worker-wide bound, clients (key holders, or anyone when keys are off) could each send
    all but the last byte of a 6 MB body and wait: 150 of them held a gigabyte (measured). Past
    `capacity` bytes held at once, a body is answered 503 and its memory let go.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0

    async def read(self, first: Message, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        message = first
        try:
            while True:
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                self.held += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                if self.held > self.capacity:
                    raise Overloaded(
                        "too many large request bodies arriving at once; retry shortly", reason="body_memory"
                    )
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
                message = await receive()
        finally:
            self.held -= size
