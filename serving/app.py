"""App factory: the lean front for inference, health, metadata and metrics; FastAPI, built when first
needed, for the API's pages and document (serving/api.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from serving import probes
from serving.auth import KeyFile
from serving.drain import install_drain_handler
from serving.exit_codes import Serve
from serving.front import InferenceFront
from serving.logs import AccessLog, configure_logging
from serving.metrics import Metrics
from serving.runtime import ModelLoadError, ModelRuntime, load_runtime
from serving.state import ServerState

if TYPE_CHECKING:
    from serving.settings import Settings

log = logging.getLogger("serving")


def create_app(
    settings: Settings | None = None, runtime: ModelRuntime | None = None, access_log: AccessLog | None = None
) -> InferenceFront:
    """The ASGI app: the lean front for the route table's routes, FastAPI behind it for the rest
    (serving/routes.py), built on the first request that needs it.

    Without a runtime, the model loads in the background; readiness waits for it."""
    if settings is None:
        from serving.settings import load_settings

        settings = load_settings()
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
    async def lifespan() -> AsyncIterator[None]:
        install_drain_handler(state, settings.shutdown_delay_seconds, settings.drain_timeout_seconds)
        # Everything allocated so far (framework, model) lives as long as the process: keep it out of
        # the collector's sight, so full collections stay cheap under load.
        gc.collect()
        gc.freeze()
        secrets_dir = os.environ.get("SERVING_SECRETS_DIR")
        key_file = (
            KeyFile(secrets_dir, _keys_from_files, front.keys.replace) if secrets_dir and front.keys.enabled else None
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

    front.lifespan = lifespan
    front.answers = probes.answers(state, metrics, front.settle)
    front.fallback = _Deferred(front)
    if runtime is not None:
        model_ready(runtime)
    return front


class _Deferred:
    """FastAPI (serving/api.py), imported and built on the first request the front hands on."""

    def __init__(self, front: InferenceFront) -> None:
        self.front = front
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            from serving.api import build_api

            self.app = build_api(self.front)
        await self.app(scope, receive, send)


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


def _keys_from_files() -> Any:
    from serving.settings import load_settings  # pydantic, loaded only when the mounted keys change

    return load_settings().api_keys


def app_from_environment() -> InferenceFront:
    """Factory for uvicorn workers: settings come from SERVING_* variables."""
    from serving.settings import load_settings

    return serve_with(load_settings())


def serve_with(settings: Settings) -> InferenceFront:
    """A worker's app: logging set up, the model loaded and warm, the front built."""
    configure_logging(settings.log_level)
    # Load before this worker accepts connections, so no worker ever answers "still loading" while
    # its siblings are ready.
    try:
        runtime = load_runtime(settings)
    except ModelLoadError as error:
        log.critical("%s", error)
        raise SystemExit(3) from None
    return create_app(settings, runtime)
