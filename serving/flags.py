"""The settings `serve` also takes as flags (`--max-rows`): a flag overrides its SERVING_* variable, and
its help is the setting's description (serving/settings.py). Without pydantic, so that the command
line is read before the settings' validation is imported (serving/settings_child.py)."""

from __future__ import annotations

SERVE_FLAGS = (
    "model",
    "model_name",
    "model_version",
    "host",
    "port",
    "workers",
    "max_concurrent_requests",
    "max_queue_size",
    "max_queue_wait_ms",
    "scoring_timeout_ms",
    "max_body_bytes",
    "max_rows",
    "log_level",
)


def flag(name: str) -> str:
    """A setting's flag: `max_rows` → `--max-rows`."""
    return "--" + name.replace("_", "-")
