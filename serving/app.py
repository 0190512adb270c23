"""App factory: health and metadata routes on FastAPI, inference on the lean front, errors in one place."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

from serving import __version__
from serving.auth import KeyFile
from serving.drain import install_drain_handler
from serving.errors import RequestError
from serving.front import InferenceFront, ServerState, is_open_path
from serving.handlers import check_model_address
from serving.logs import AccessLog, configure_logging
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import Metrics
from serving.openapi_models import (
    ErrorBody,
    InferRequest,
    InferResponse,
    MlflowRequest,
    PredictionsResponse,
    ScoreRequest,
)
from serving.protocols import v2
from serving.runtime import ModelLoadError, ModelRuntime
from serving.settings import Settings, load_settings

log = logging.getLogger("serving")


def load_runtime(settings: Settings) -> ModelRuntime:
    """Load and warm up the model the settings name. Raises ModelLoadError with a one-line message."""
    runtime = ModelRuntime(
        settings.model,
        name=settings.model_name,
        version=settings.model_version,
        intra_op_threads=settings.intra_op_threads,
    )
    runtime.warm_up()
    return runtime


def _error_response(error: RequestError) -> JSONResponse:
    headers = {k.decode(): v.decode() for k, v in error.headers()}
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _health_routes(api: FastAPI, state: ServerState) -> None:
    # Probes may use HEAD: the same answer without a body.
    probe = {"methods": ["GET", "HEAD"]}

    @api.api_route("/", **probe, tags=["health"], summary="Liveness (Azure ML convention)")
    async def live_root() -> dict[str, str]:
        return {"status": "alive"}

    @api.api_route(
        "/ping",
        **probe,
        tags=["health"],
        summary="SageMaker health check: 200 once the model is ready",
        responses={503: {"model": ErrorBody}},
    )
    async def ping() -> JSONResponse:
        return _readiness(state)

    @api.api_route("/v2/health/live", **probe, tags=["v2"], summary="Liveness")
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @api.api_route(
        "/v2/health/ready",
        **probe,
        tags=["v2"],
        summary="Readiness: model loaded and warmed up",
        responses={503: {"model": ErrorBody}},
    )
    async def v2_ready() -> JSONResponse:
        return _readiness(state)


def _readiness(state: ServerState) -> JSONResponse:
    if state.ready:
        return JSONResponse({"ready": True, "status": "ready"})
    reason = "draining" if state.draining else "model is loading"
    return JSONResponse(
        {"ready": False, "error": reason, "code": "not_ready"}, status_code=503, headers={"retry-after": "1"}
    )


def _v2_metadata_routes(api: FastAPI, state: ServerState) -> None:
    @api.get("/v2", tags=["v2"], summary="Server metadata")
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

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        api.add_api_route(
            prefix,
            model_metadata,
            methods=["GET"],
            tags=["v2"],
            summary="Model metadata",
            responses={404: {"model": ErrorBody}},
        )
        api.add_api_route(
            prefix + "/ready",
            model_ready,
            methods=["GET"],
            tags=["v2"],
            summary="Model readiness",
            responses={404: {"model": ErrorBody}},
        )


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


ERROR_TEXTS = {
    400: "Invalid input",
    401: "Missing or wrong API key",
    404: "Unknown model or version",
    405: "Method not allowed",
    406: "Cannot answer in the accepted media type",
    413: "Body too large",
    415: "Unsupported content type",
    503: "Not ready",
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": ERROR_TEXTS[code], "content": {"application/json": _json_body(ErrorBody)}}
        for code in codes
    }


def _inference_operation(
    summary: str,
    request: dict[str, Any],
    response: dict[str, Any],
    tag: str,
    params: list[dict[str, Any]] | None = None,
    extra_errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    errors = _errors(400, 401, 413, 503, *extra_errors)
    return {
        "post": {
            "tags": [tag],
            "summary": summary,
            "parameters": params or [],
            "requestBody": {"required": True, "content": request},
            "responses": {"200": {"description": "Predictions", "content": response}, **errors},
        }
    }


def _document_inference_routes(api: FastAPI, keys_enabled: bool) -> None:
    """Add the front's routes to FastAPI's OpenAPI document."""
    base_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = base_openapi()
        _, definitions = models_json_schema(
            [
                (m, "validation")
                for m in (ScoreRequest, PredictionsResponse, MlflowRequest, InferRequest, InferResponse, ErrorBody)
            ],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
        name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
        version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
        infer = {"application/json": _json_body(InferRequest)}
        infer_out = {"application/json": _json_body(InferResponse)}
        paths = {
            "/score": _inference_operation(
                "Score rows (Azure ML style)",
                {"application/json": _json_body(ScoreRequest)},
                {"application/json": _json_body(PredictionsResponse)},
                "azureml",
            ),
            "/invocations": _inference_operation(
                "Score rows (SageMaker / MLflow)",
                {"application/json": _json_body(MlflowRequest), "text/csv": {"schema": {"type": "string"}}},
                {"application/json": _json_body(PredictionsResponse), "text/csv": {"schema": {"type": "string"}}},
                "sagemaker",
                extra_errors=(406, 415),
                params=[
                    {
                        "name": "X-Amzn-SageMaker-Custom-Attributes",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "example": "method=predict_proba"},
                    }
                ],
            ),
            "/v2/models/{name}/infer": _inference_operation(
                "Infer (Open Inference Protocol)", infer, infer_out, "v2", [name], (404,)
            ),
            "/v2/models/{name}/versions/{version}/infer": _inference_operation(
                "Infer a version (Open Inference Protocol)", infer, infer_out, "v2", [name, version], (404,)
            ),
        }
        schema["paths"].update(paths)
        if keys_enabled:
            schema["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
            for path, item in schema["paths"].items():
                if not is_open_path(path):
                    for operation in item.values():
                        operation["security"] = [{"apiKey": []}]
                        operation["responses"].update(_errors(401))
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None, runtime: ModelRuntime | None = None, access_log: AccessLog | None = None
) -> InferenceFront:
    """The ASGI app. Without a runtime, the model loads in the background; readiness waits for it."""
    settings = settings or load_settings()
    state = ServerState()
    metrics = Metrics()
    access_log = access_log or AccessLog(settings.access_log)

    def model_ready(loaded: ModelRuntime) -> None:
        state.runtime = loaded
        metrics.model = (loaded.name, loaded.version)
        connection = settings.applicationinsights_connection_string
        if connection is not None and connection.get_secret_value():
            from serving.telemetry import Telemetry

            front.journal.telemetry = Telemetry(
                connection.get_secret_value(), loaded.name, loaded.version, settings.telemetry_requests_per_second
            )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_drain_handler(state, settings.shutdown_delay_seconds)
        # Everything allocated so far (framework, model) lives as long as the process: keep it out of
        # the collector's sight, so full collections stay cheap under load.
        gc.collect()
        gc.freeze()
        secrets_dir = os.environ.get("SERVING_SECRETS_DIR")
        key_file = (
            KeyFile(secrets_dir, lambda: load_settings().api_keys, front.keys.replace)
            if secrets_dir and front.keys.enabled
            else None
        )
        tasks = [asyncio.create_task(_housekeeping(front, access_log, key_file))]
        if state.runtime is None:
            tasks.append(asyncio.create_task(_load_in_background(settings, model_ready)))
        yield
        for task in tasks:
            task.cancel()
        front.settle()
        access_log.flush()
        front.pool.shutdown()
        metrics.worker_exited()
        if front.journal.telemetry is not None:
            front.journal.telemetry.shutdown()

    api = FastAPI(
        title="mlserve",
        redirect_slashes=False,  # the front redirects, relatively
        version=__version__,
        lifespan=lifespan,
        description="One ONNX model behind Azure ML, SageMaker and Open Inference Protocol routes.",
    )

    @api.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError) -> JSONResponse:
        return _error_response(error)

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail), "code": "http_error"},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"error": f"{where}: {first['msg']}", "code": "invalid_input"}, status_code=400)

    @api.get("/swagger.json", include_in_schema=False)
    async def swagger() -> dict[str, Any]:
        return api.openapi()

    @api.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus_metrics() -> Response:
        front.settle()
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    _health_routes(api, state)
    _v2_metadata_routes(api, state)
    front = InferenceFront(settings, state, api, metrics, access_log)
    _document_inference_routes(api, front.keys.enabled)
    if runtime is not None:
        model_ready(runtime)
    return front


async def _housekeeping(front: InferenceFront, access_log: AccessLog, key_file: KeyFile | None) -> None:
    """Twice a second: finished requests into metrics and access lines, out to stdout and other workers;
    and new API keys, when the mounted key file changed."""
    while True:
        await asyncio.sleep(0.5)
        front.settle()
        access_log.flush()
        front.metrics.publish()
        if key_file is not None:
            key_file.check()


async def _load_in_background(settings: Settings, model_ready: Callable[[ModelRuntime], None]) -> None:
    try:
        runtime = await asyncio.to_thread(load_runtime, settings)
    except ModelLoadError as error:
        # The CLI validates the model before starting workers, so this is rare (e.g. the file changed).
        log.critical("%s", error)
        os._exit(3)
    model_ready(runtime)
    log.info("model %s version %s ready", runtime.name, runtime.version)


def app_from_environment() -> InferenceFront:
    """Factory for uvicorn workers: settings come from SERVING_* variables."""
    settings = load_settings()
    configure_logging(settings.log_level)
    # Load before this worker accepts connections, so no worker ever answers "still loading" while
    # its siblings are ready.
    try:
        runtime = load_runtime(settings)
    except ModelLoadError as error:
        log.critical("%s", error)
        raise SystemExit(3) from None
    return create_app(settings, runtime)
