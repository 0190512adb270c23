"""How a multi-worker server starts its children on Linux: forked from the supervisor, which imported
what they all use while the settings were validated (serving/settings_child.py).

A forked worker starts with uvicorn, numpy, prometheus-client and the front already imported, and
shares those pages with its siblings: about 0.1 s a worker instead of 0.6 s of imports, and less
memory (bench/README.md "Start-up"). onnxruntime is not among them: importing it starts a thread,
and a thread does not survive a fork (one that held a lock then leaves it locked in the child), so
each child imports it after the fork (0.05 s). Where fork is not the platform's safe default (macOS),
or onnxruntime is already imported here, children are spawned and import for themselves, as uvicorn
starts them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Literal

# Everything serving.app and uvicorn's worker import that does not import onnxruntime (tested).
PRELOAD = (
    "numpy",
    "uvloop",
    "uvicorn",
    "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvicorn.loops.uvloop",
    "prometheus_client",
    "starlette.types",
    "serving.metrics",
    "serving.logs",
    "serving.transport",
    "serving.auth",
)


def start_method() -> Literal["fork", "spawn"]:
    """`fork` where it is safe here and now, else `spawn`."""
    return "fork" if sys.platform.startswith("linux") and "onnxruntime" not in sys.modules else "spawn"


def preload() -> None:
    """Import what every child uses, before the first fork."""
    for name in PRELOAD:
        importlib.import_module(name)
