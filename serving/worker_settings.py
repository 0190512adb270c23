"""Settings as a worker process holds them, and what workers compute from them, without pydantic.

The settings are validated once, in a child the server forks for it (serving/settings_child.py,
pydantic); the server takes the values it hands back and gives them to each worker with the worker's
start (in memory when forked, pickled through the pipe when spawned: neither in the environment nor
on disk). No
serving process imports pydantic then, 12 MB and a third of a second each (bench/README.md); only a
key file's rotation (SERVING_SECRETS_DIR) loads it again, to validate the new keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol


class Secret:
    """A secret value that does not show in logs or reprs: pydantic's SecretStr, as far as the server uses it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret('{self}')"


def plain(value: Any) -> Any:
    """A setting's value with pydantic's secrets as `Secret`s, so that unpickling needs no pydantic."""
    if hasattr(value, "get_secret_value"):
        return Secret(value.get_secret_value())
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


class HandedSettings:
    """Validated settings, read-only, with the same attributes as `Settings`."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError("settings are read-only")

    def __repr__(self) -> str:
        return "HandedSettings(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


_handed: HandedSettings | None = None


def take_over(values: dict[str, Any]) -> HandedSettings:
    """This worker's settings, from the parent's values; `handed()` returns them from now on."""
    global _handed
    _handed = HandedSettings(values)
    return _handed


def handed() -> Any:
    """This worker's settings (with Settings' attributes), or None where they were not handed over: validate
    them from the environment then (serving.settings.load_settings)."""
    return _handed


class _Workers(Protocol):
    @property
    def inline_scoring_budget_us(self) -> int | None: ...

    @property
    def workers(self) -> int | None: ...


class _Connections(Protocol):
    @property
    def max_connections(self) -> int | None: ...


def container_cpu_count() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2 CPU quota if one is set."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


# Measured (bench/README.md, 16 cores): with a core per worker, a thread hop buys no parallelism,
# and scoring 64 rows of the benchmark model (about 0.9 ms) on the event loop serves more.
INLINE_BUDGET_SPARE_CORES_US = 500
INLINE_BUDGET_NO_SPARE_CORES_US = 3000


def inline_scoring_budget_us(settings: _Workers) -> int:
    """The budget the settings name, or the one for this machine: are there cores beyond one per worker?"""
    if settings.inline_scoring_budget_us is not None:
        return settings.inline_scoring_budget_us
    cpus = container_cpu_count()
    workers = settings.workers or cpus
    return INLINE_BUDGET_SPARE_CORES_US if cpus > workers else INLINE_BUDGET_NO_SPARE_CORES_US


def connection_limit(settings: _Connections) -> int:
    """`max_connections`, or what the process's open-file limit leaves after the model, logs and pipes."""
    if settings.max_connections is not None:
        return settings.max_connections
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, soft - 64)
