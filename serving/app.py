"""App factory: health and metadata routes on FastAPI, inference on the lean front, errors in one place."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving import __version__
from serving.api_pages import add_api_pages
from serving.auth import KeyFile
from serving.drain import install_drain_handler
from serving.endpoints import endpoints
from serving.errors import RequestError
from serving.exit_codes import Serve
from serving.front import InferenceFront
from serving.logs import AccessLog, configure_logging
from serving.metrics import Metrics
from serving.openapi import document
from serving.openapi_models import ErrorBody
from serving.routes import ROUTES
from serving.runtime import ModelLoadError, ModelRuntime, load_runtime
from serving.settings import Settings, load_settings
from serving.state import ServerState

log = logging.getLogger("serving")


def _error_response(error: RequestError) -> JSONResponse:
    headers = {k.decode(): v.decode() for k, v in error.headers()}
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def create_app(
    settings: Settings | None = None, runtime: ModelRuntime | None = None, access_log: AccessLog | None = None
) -> InferenceFront:
    """The ASGI app: the lean front for inference, FastAPI behind it for the rest (serving/routes.py).

    Without a runtime, the model loads in the background; readiness waits for it."""
    settings = settings or load_settings()
    state = ServerState()
    metrics = Metrics()
    access_log = access_log or AccessLog(settings.access_log)
    front = InferenceFront(settings, state, metrics, access_log)

    def model_ready(loaded: ModelRuntime) -> None:
        state.runtime = loaded
        metrics.model = (loaded.name, loaded.version)
        connection = settings.applicationinsights_connection_string
        if connection is not None and connection.get_secret_value():
            from serving.telemetry import Telemetry

            front.journal.telemetry = Telemetry(
                connection.get_secret_value(), loaded.name, loaded.version, settings.telemetry_requests_per_second
            )
        if settings.capture_percent > 0:
            from serving.capture import start_capture

            front.capture = start_capture(settings, loaded)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_drain_handler(state, settings.shutdown_delay_seconds, settings.drain_timeout_seconds)
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
        if front.capture is not None:
            # Within what is left of the drain timeout since SIGTERM (or the whole of it, without one).
            front.capture.close(state.drain_deadline or time.monotonic() + settings.drain_timeout_seconds)
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
        docs_url=None,
        redoc_url=None,
    )
    add_api_pages(api, api.title)
    _error_handlers(api)
    base_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        # Kept once the model is loaded: its columns are part of the document.
        made = document(base_openapi, ROUTES, front.keys.enabled, state.runtime)
        api.openapi_schema = made if state.runtime is not None else None
        return made

    api.openapi = openapi  # type: ignore[method-assign]
    served = endpoints(state, metrics, front.settle, openapi)
    for route in ROUTES:
        if route.endpoint is not None:
            function, options = served[route.endpoint]
            for method in route.methods:
                api.add_api_route(
                    route.template,
                    function,
                    methods=[method],
                    tags=[route.tag],
                    summary=route.summary,
                    operation_id=f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', route.template).rstrip('_')}",
                    **{
                        "responses": {code: {"model": ErrorBody} for code in route.errors},
                        **options,
                        # HEAD is GET without the body: one operation in the document is enough.
                        **({"include_in_schema": False} if method == "HEAD" else {}),
                    },
                )
    front.fallback = api
    if runtime is not None:
        model_ready(runtime)
    return front


def _error_handlers(api: FastAPI) -> None:
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
        os._exit(Serve.WORKER_MODEL)
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
