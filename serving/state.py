"""What the running server knows, shared by the front, the FastAPI endpoints and the drain handler."""

from __future__ import annotations

from dataclasses import dataclass

from serving.errors import NotReady
from serving.runtime import ModelRuntime


@dataclass
class ServerState:
    """`runtime` is set once the model is loaded and warm; `draining` once SIGTERM arrives."""

    runtime: ModelRuntime | None = None
    draining: bool = False
    drain_deadline: float | None = None  # monotonic: when the drain must be over (SIGTERM + delay + timeout)

    @property
    def ready(self) -> bool:
        return self.runtime is not None and not self.draining

    def require_runtime(self) -> ModelRuntime:
        if self.runtime is None:
            raise NotReady("model is still loading; retry shortly")
        return self.runtime
