"""Command line: `python -m serving [serve] [--model PATH] [--port 8080] ...`.

SageMaker starts the image as `docker run IMAGE serve`; with no command, `serve` is assumed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pydantic import ValidationError

from serving.runtime import ModelLoadError
from serving.settings import Settings

# Flag -> setting; each flag overrides its SERVING_* variable.
SERVE_FLAGS = {
    "model": "Path to an ONNX file or a directory holding one",
    "model_name": "Model name in URLs (default: from the model's metadata)",
    "model_version": "Model version (default: from the model's metadata)",
    "host": "Address to bind (default 0.0.0.0)",
    "port": "Port (default 8080)",
    "workers": "Worker processes, each with its own copy of the model",
    "max_concurrent_requests": "Inferences running at once per worker",
    "max_body_bytes": "Largest request body accepted",
    "max_rows": "Most rows per request",
    "log_level": "debug, info, warning or error",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving", description="mlserve model server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="Run the HTTP server (default)")
    for name, help_text in SERVE_FLAGS.items():
        serve.add_argument("--" + name.replace("_", "-"), dest=name, help=help_text)
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    # Flags become environment variables so that every uvicorn worker process sees the same settings.
    for name in SERVE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            os.environ["SERVING_" + name.upper()] = str(value)
    return Settings()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        lines.append(f"invalid setting SERVING_{field.upper()} (--{field.replace('_', '-')}): {item['msg']}")
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from serving.app import create_app, load_runtime

    try:
        settings = _settings_from(args)
    except ValidationError as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        runtime = load_runtime(settings)  # fail fast, before binding the port, with one clear line
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    common: dict = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "timeout_graceful_shutdown": 20,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings, runtime), **common)
    else:
        del runtime  # each worker loads its own copy
        uvicorn.run("serving.app:app_from_environment", factory=True, workers=settings.workers, **common)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")  # `python -m serving --port 9000` means serve
    args = _parser().parse_args(argv)
    if args.command in (None, "serve"):
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
