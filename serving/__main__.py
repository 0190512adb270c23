"""Command line: `python -m serving [serve|batch|drift] ...`.

SageMaker starts the image as `docker run IMAGE serve`; with no command, `serve` is assumed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from serving.exit_codes import Serve

if TYPE_CHECKING:
    from serving.runtime import ModelRuntime
    from serving.settings import Settings

# Spawned workers import this module again (as multiprocessing's __mp_main__): what it imports at the
# top, every worker holds. The settings' validation (pydantic) is imported where it is used, in the parent.

log = logging.getLogger("serving")


def _parser() -> argparse.ArgumentParser:
    from serving.settings import SERVE_FLAGS, Settings

    parser = argparse.ArgumentParser(prog="python -m serving", description="mlserve model server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="Run the HTTP server (default)")
    for name in SERVE_FLAGS:
        help_text = (Settings.model_fields[name].description or "").replace("%", "%%")  # argparse formats help
        serve.add_argument("--" + name.replace("_", "-"), dest=name, help=help_text)
    from serving.batch_cli import add_batch_arguments

    add_batch_arguments(commands.add_parser("batch", help="Score a CSV or Parquet file"))
    from serving.drift.cli import add_drift_arguments

    add_drift_arguments(commands.add_parser("drift", help="Drift report of captured requests against the baseline"))
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    from serving.settings import SERVE_FLAGS, load_settings

    # Flags become environment variables so that every uvicorn worker process sees the same settings.
    for name in SERVE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            os.environ["SERVING_" + name.upper()] = str(value)
    return load_settings()


def serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from serving.model_check import ModelCheckFailed, check_result, start_check
    from serving.settings import describe_settings_error, handed_over
    from serving.worker_settings import container_cpu_count

    try:
        settings = _settings_from(args)
    except ValidationError as error:
        print(f"error: {describe_settings_error(error)}", file=sys.stderr)
        return Serve.SETTINGS
    workers = settings.workers or container_cpu_count()
    # With several workers, the model check starts now and runs while this process imports the rest.
    values = handed_over(settings)
    check = start_check(values) if workers > 1 else None

    import uvicorn

    from serving.listener import ClosingMultiprocess, ListenError, bind
    from serving.logs import configure_logging
    from serving.transport import CoalescingHttpToolsProtocol
    from serving.worker import Worker

    configure_logging(settings.log_level)
    # Fail fast, before binding the port, with one clear line. With several workers the parent only
    # supervises, so the model is checked in a child and never held here (serving/model_check.py).
    runtime: ModelRuntime | None = None
    try:
        if check is None:
            from serving.capture import CaptureSettingsError, record_format
            from serving.runtime import ModelLoadError, load_runtime

            try:
                runtime = load_runtime(settings)
                if settings.capture_percent > 0:
                    record_format(settings, runtime)
            except (ModelLoadError, CaptureSettingsError) as error:
                raise ModelCheckFailed(str(error)) from None
            name, version = runtime.name, runtime.version
        else:
            name, version = check_result(check)
    except ModelCheckFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return Serve.MODEL
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "access_log": False,  # the front writes one JSON line per request instead
        "proxy_headers": False,
        "server_header": False,
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
        "ws": "none",
        "timeout_graceful_shutdown": settings.drain_timeout_seconds,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
    }
    metrics_dir = None
    try:
        if workers > 1:
            metrics_dir = _metrics_directory(settings.metrics_dir)
        sock = bind(settings.host, settings.port)
    except ListenError as error:
        print(f"error: {error}", file=sys.stderr)
        return Serve.LISTEN
    log.info(
        "serving %s version %s on %s:%s with %d worker(s); %s",
        name,
        version,
        settings.host,
        settings.port,
        workers,
        auth_summary(settings),
    )
    if runtime is not None:
        from serving.app import create_app

        uvicorn.Server(uvicorn.Config(create_app(settings, runtime), **common)).run(sockets=[sock])
        return Serve.STOPPED
    try:
        # The workers take the settings validated here, pickled with their start: none imports pydantic.
        config = uvicorn.Config(Worker(values), factory=True, workers=workers, **common)
        ClosingMultiprocess(config, sockets=[sock]).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return Serve.STOPPED


def auth_summary(settings: Settings) -> str:
    """Whether callers need a key or token, without a word of any key: said once at start-up."""
    ways = []
    if settings.api_keys:
        ways.append(f"{len(settings.api_keys)} API key(s)")
    if settings.entra_tenant_id and settings.entra_audience:
        ways.append(f"Entra ID tokens of tenant {settings.entra_tenant_id}")
    return "auth: " + " or ".join(ways) if ways else "auth off: anyone who reaches the port can score"


def _metrics_directory(parent: str | None) -> str:
    """A private directory where the workers' metrics meet; set before the workers start."""
    from serving.listener import ListenError

    try:
        path = tempfile.mkdtemp(prefix="mlserve-metrics-", dir=parent)
    except OSError as error:
        where = parent or tempfile.gettempdir()
        raise ListenError(
            f"cannot create the workers' metrics directory in {where} ({error.strerror}): with several workers "
            "set SERVING_METRICS_DIR to a writable directory, or mount a writable /tmp"
        ) from None
    from serving.metrics import METRICS_DIR_VARIABLE

    os.environ[METRICS_DIR_VARIABLE] = path  # before workers import serving.metrics
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")  # `python -m serving --port 9000` means serve
    args = _parser().parse_args(argv)
    if args.command == "batch":
        from serving.batch import run_batch

        return run_batch(args)
    if args.command == "drift":
        from serving.drift.cli import run  # its libraries are not in the serving image

        return run(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
