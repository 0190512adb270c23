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
from typing import TYPE_CHECKING, Any, cast

from serving.exit_codes import Serve

if TYPE_CHECKING:
    from serving.settings import Settings

# Spawned workers import this module again (as multiprocessing's __mp_main__): what it imports at the
# top, every worker holds. The settings' validation (pydantic) is imported only in the child that validates
# them (serving/settings_child.py), and for `--help`.

log = logging.getLogger("serving")


def _parser(with_help: bool = True) -> argparse.ArgumentParser:
    """The command line; the settings' descriptions (pydantic) are imported only to print `--help`."""
    from serving.flags import SERVE_FLAGS, flag

    descriptions: dict[str, str] = {}
    if with_help:
        from serving.settings import Settings

        descriptions = {name: Settings.model_fields[name].description or "" for name in SERVE_FLAGS}
    parser = argparse.ArgumentParser(prog="python -m serving", description="mlserve model server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="Run the HTTP server (default)")
    for name in SERVE_FLAGS:
        serve.add_argument(flag(name), dest=name, help=descriptions.get(name, "").replace("%", "%%"))
    from serving.batch_cli import add_batch_arguments

    add_batch_arguments(commands.add_parser("batch", help="Score a CSV or Parquet file"))
    from serving.drift.cli import add_drift_arguments

    add_drift_arguments(commands.add_parser("drift", help="Drift report of captured requests against the baseline"))
    return parser


def _flags_into_environment(args: argparse.Namespace) -> None:
    """Flags become environment variables, so that every process of the server sees the same settings."""
    from serving.flags import SERVE_FLAGS

    for name in SERVE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            os.environ["SERVING_" + name.upper()] = str(value)


def _expected_workers() -> int:
    """The worker count the settings will most likely name, before they are validated: what to prepare for."""
    from serving.worker_settings import container_cpu_count

    try:
        return int(os.environ.get("SERVING_WORKERS", ""))
    except ValueError:
        return container_cpu_count()


def serve(args: argparse.Namespace) -> int:
    from serving.prefork import preload, start_method
    from serving.settings_child import InvalidSettings, PendingSettings
    from serving.worker_settings import container_cpu_count, take_over

    _flags_into_environment(args)
    # The settings are validated in a child (pydantic) while this process imports what it serves with,
    # or, to supervise several workers, what they all use before it forks them (serving/prefork.py).
    pending = PendingSettings.start()
    import uvicorn  # noqa: F401 (imported while the settings are validated)

    from serving.logs import configure_logging
    from serving.transport import CoalescingHttpToolsProtocol

    if _expected_workers() == 1:
        import serving.app  # noqa: F401 (onnxruntime, numpy and the app: the same)
    elif start_method() == "fork":
        preload()
    try:
        values = pending.result()
    except InvalidSettings as error:
        print(f"error: {error}", file=sys.stderr)
        return Serve.SETTINGS
    settings = cast("Settings", take_over(values))
    workers = settings.workers or container_cpu_count()

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
    if workers == 1:
        return _serve_one(settings, common)
    return _serve_workers(settings, values, workers, common)


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


def _serve_workers(settings: Settings, values: dict[str, Any], workers: int, common: dict[str, Any]) -> int:
    """Several workers: the parent only supervises; a child checks the model (serving/model_check.py) and
    never this process. The port is bound and the first workers (one a CPU) start while the check runs
    (forked on Linux: serving/prefork.py); they wait for its verdict before loading the model. A bad model
    stops them unheard and the server with the check's one line, before anything is announced or
    answered; a model error comes before a port error, as when the port was bound after the check."""
    import multiprocessing

    import uvicorn

    from serving.listener import ClosingMultiprocess, ListenError, bind
    from serving.model_check import ModelCheck, ModelCheckFailed
    from serving.worker import Worker
    from serving.worker_settings import container_cpu_count

    check = ModelCheck.start(values)
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
            # Of the spawn kind, which forked workers inherit and uvicorn's spawned replacements unpickle.
            context = multiprocessing.get_context("spawn")
            verdict, up = context.Event(), context.Semaphore(0)
            # The workers take the validated settings with the factory: none imports pydantic.
            config = uvicorn.Config(Worker(values, verdict, up), factory=True, workers=workers, **common)
            cpus = container_cpu_count()
            supervisor = ClosingMultiprocess(config, [sock], at_once=cpus, up=up)
            # The check has a core to itself (measured: with every core's worker beside it, it answered
            # later and the first worker with it); the rest of the first workers start after it.
            supervisor.start(max(1, cpus - 1))
        try:
            name, version = check.result()
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


def _asks_help(arg: str) -> bool:
    """-h, --help, or an abbreviation of it that argparse accepts (--he)."""
    return arg == "-h" or (len(arg) > 3 and "--help".startswith(arg))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")  # `python -m serving --port 9000` means serve
    args = _parser(with_help=any(_asks_help(arg) for arg in argv)).parse_args(argv)
    if args.command == "batch":
        from serving.batch import run_batch

        return run_batch(args)
    if args.command == "drift":
        from serving.drift.cli import run  # its libraries are not in the serving image

        return run(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
