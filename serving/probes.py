"""The health, metadata and metrics answers, without a web framework.

The front answers these routes itself (serving/front.py), so a worker that is only probed, scraped
and asked to score never imports FastAPI (7 MB and a third of a second a worker, bench/README.md);
FastAPI is built on the first request for the API's pages and document (serving/api.py), and serves
these routes too from the same functions (serving/endpoints.py), for the rare request the front hands
it (a query string, another method).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from serving.handlers import JSON, Reply, check_model_address
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import Metrics
from serving.protocols import v2
from serving.state import ServerState

Answer = Callable[[dict[str, str]], Reply]  # the path's parameters -> the reply

LIVE = {"status": "alive"}
V2_LIVE = {"live": True}


def readiness(state: ServerState) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The readiness body, status and headers."""
    if state.ready:
        return {"ready": True, "status": "ready"}, 200, {}
    reason = "draining" if state.draining else "model is loading"
    return {"ready": False, "error": reason, "code": "not_ready"}, 503, {"retry-after": "1"}


def model_metadata(state: ServerState, name: str, version: str | None) -> dict[str, Any]:
    runtime = state.require_runtime()
    check_model_address(runtime, name, version)
    return v2.model_metadata(runtime)


def model_readiness(state: ServerState, name: str, version: str | None) -> tuple[dict[str, Any], int]:
    runtime = state.require_runtime()
    check_model_address(runtime, name, version)
    return {"name": runtime.name, "ready": state.ready}, 200 if state.ready else 503


def json_bytes(content: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it (FastAPI's answers), byte for byte."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    extra = tuple((k.encode(), v.encode()) for k, v in (headers or {}).items())
    return Reply(status, json_bytes(content), JSON, extra)


def answers(state: ServerState, metrics: Metrics, settle: Callable[[], None]) -> dict[str, Answer]:
    """By the route table's endpoint names (serving/routes.py); `swagger` is FastAPI's (the document)."""

    def prometheus(_: dict[str, str]) -> Reply:
        settle()
        return Reply(200, metrics.exposition(), METRICS_CONTENT_TYPE.encode())

    return {
        "live": lambda _: _json(LIVE),
        "v2_live": lambda _: _json(V2_LIVE),
        "ready": lambda _: _json(*readiness(state)),
        "server_metadata": lambda _: _json(v2.server_metadata()),
        "model_metadata": lambda p: _json(model_metadata(state, p["name"], p.get("version"))),
        "model_ready": lambda p: _json(*model_readiness(state, p["name"], p.get("version"))),
        "metrics": prometheus,
    }
