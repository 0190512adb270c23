"""The routes FastAPI serves (health, metadata, metrics, the API description), by the names the route
table (serving/routes.py) gives them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse, Response

from serving.handlers import check_model_address
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import Metrics
from serving.protocols import v2
from serving.state import ServerState

Endpoint = tuple[Callable[..., Any], dict[str, Any]]  # the function, and FastAPI route options it needs


def readiness(state: ServerState) -> JSONResponse:
    if state.ready:
        return JSONResponse({"ready": True, "status": "ready"})
    reason = "draining" if state.draining else "model is loading"
    return JSONResponse(
        {"ready": False, "error": reason, "code": "not_ready"}, status_code=503, headers={"retry-after": "1"}
    )


def endpoints(
    state: ServerState, metrics: Metrics, settle: Callable[[], None], openapi: Callable[[], dict[str, Any]]
) -> dict[str, Endpoint]:
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    async def ready() -> JSONResponse:
        return readiness(state)

    async def server_metadata() -> dict[str, Any]:
        return v2.server_metadata()

    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        runtime = state.require_runtime()
        check_model_address(runtime, name, version)
        return v2.model_metadata(runtime)

    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        runtime = state.require_runtime()
        check_model_address(runtime, name, version)
        return JSONResponse({"name": runtime.name, "ready": state.ready}, status_code=200 if state.ready else 503)

    async def prometheus_metrics() -> Response:
        settle()
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    async def swagger() -> dict[str, Any]:
        return openapi()

    text = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}
    return {
        "live": (live, {}),
        "v2_live": (v2_live, {}),
        "ready": (ready, {}),
        "server_metadata": (server_metadata, {}),
        "model_metadata": (model_metadata, {}),
        "model_ready": (model_ready, {}),
        "metrics": (prometheus_metrics, {"response_class": Response, "responses": text}),
        "swagger": (swagger, {"include_in_schema": False}),
    }
