"""The routes FastAPI serves (health, metadata, metrics, the API description), by the names the route
table (serving/routes.py) gives them.

The front answers the same routes itself (serving/probes.py, the same functions); these are FastAPI's
copies, for the API document (their signatures describe them) and for the requests the front hands on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse, Response

from serving import probes
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import Metrics
from serving.protocols import v2
from serving.state import ServerState

Endpoint = tuple[Callable[..., Any], dict[str, Any]]  # the function, and FastAPI route options it needs


def readiness(state: ServerState) -> JSONResponse:
    content, status, headers = probes.readiness(state)
    return JSONResponse(content, status_code=status, headers=headers or None)


def endpoints(
    state: ServerState, metrics: Metrics, settle: Callable[[], None], openapi: Callable[[], dict[str, Any]]
) -> dict[str, Endpoint]:
    async def live() -> dict[str, str]:
        return probes.LIVE

    async def v2_live() -> dict[str, bool]:
        return probes.V2_LIVE

    async def ready() -> JSONResponse:
        return readiness(state)

    async def server_metadata() -> dict[str, Any]:
        return v2.server_metadata()

    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return probes.model_metadata(state, name, version)

    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        content, status = probes.model_readiness(state, name, version)
        return JSONResponse(content, status_code=status)

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
