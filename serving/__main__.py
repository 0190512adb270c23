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
    import subprocess

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

    from serving.model_check import start_check
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

    from serving.logs import configure_logging
    from serving.transport import CoalescingHttpToolsProtocol

    configure_logging(settings.log_level)
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
    if check is None:
        return _serve_one(settings, common)
    return _serve_workers(settings, values, workers, check, common)


def _serve_one(settings: Settings, common: dict[str, Any]) -> int:
    """One worker: this process loads the model (failing fast, before binding the port, with one clear
    line) and serves."""
    import uvicorn

    from serving.app import create_app
    from serving.capture import CaptureSettingsError, record_format
    from serving.listener import ListenError, bind
    from serving.runtime import ModelLoadError, load_runtime

    try:
        runtime = load_runtime(settings)
        if settings.capture_percent > 0:
            record_format(settings, runtime)
    except (ModelLoadError, CaptureSettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return Serve.MODEL
    try:
        sock = bind(settings.host, settings.port)
    except ListenError as error:
        print(f"error: {error}", file=sys.stderr)
        return Serve.LISTEN
    _announce(settings, runtime.name, runtime.version, 1)
    uvicorn.Server(uvicorn.Config(create_app(settings, runtime), **common)).run(sockets=[sock])
    return Serve.STOPPED


def _serve_workers(
    settings: Settings, values: dict[str, Any], workers: int, check: subprocess.Popen[bytes], common: dict[str, Any]
) -> int:
    """Several workers: the parent only supervises; a child checks the model (serving/model_check.py) and
    never this process. The port is bound and the first workers (one a CPU) start while the check runs;
    they import, then wait for its verdict before loading the model. A bad model stops them unheard and
    the server with the check's one line, before anything is announced or answered; a model error
    comes before a port error, as when the port was bound after the check."""
    import multiprocessing

    import uvicorn

    from serving.listener import ClosingMultiprocess, ListenError, bind
    from serving.model_check import ModelCheckFailed, check_result
    from serving.worker import Worker
    from serving.worker_settings import container_cpu_count

    metrics_dir = None
    supervisor = None
    listen_error = None
    try:
        metrics_dir = _metrics_directory(settings.metrics_dir)
        sock = bind(settings.host, settings.port)
    except ListenError as error:
        listen_error = error
    try:
        if listen_error is None:
            # spawn: uvicorn's workers are spawned, and these are pickled to them with the factory.
            context = multiprocessing.get_context("spawn")
            verdict, up = context.Event(), context.Semaphore(0)
            # The workers take the settings validated here, pickled with their start: none imports pydantic.
            config = uvicorn.Config(Worker(values, verdict, up), factory=True, workers=workers, **common)
            cpus = container_cpu_count()
            supervisor = ClosingMultiprocess(config, [sock], at_once=cpus, up=up)
            # The check has a core to itself (measured: with every core's worker beside it, it answered
            # later and the first worker with it); the rest of the first workers start after it.
            supervisor.start(max(1, cpus - 1))
        try:
            name, version = check_result(check)
        except ModelCheckFailed as error:
            if supervisor is not None:
                supervisor.abandon()
            print(f"error: {error}", file=sys.stderr)
            return Serve.MODEL
        if supervisor is None:
            print(f"error: {listen_error}", file=sys.stderr)
            return Serve.LISTEN
        _announce(settings, name, version, workers)
        verdict.set()
        supervisor.run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return Serve.STOPPED


def _announce(settings: Settings, name: str, version: str, workers: int) -> None:
    log.info(
        "serving %s version %s on %s:%s with %d worker(s); %s",
        name,
        version,
        settings.host,
        settings.port,
        workers,
        auth_summary(settings),
    )


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
