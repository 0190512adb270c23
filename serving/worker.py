"""What a multi-worker server's parent hands each worker: the factory it calls for its app."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

from serving.worker_settings import take_over

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event, Semaphore

    from serving.front import InferenceFront
    from serving.settings import Settings

# How often a worker waiting for the model check's verdict looks whether its parent is still there.
_PARENT_CHECK_SECONDS = 1.0


class Worker:
    """The factory each worker calls (uvicorn's `factory=True`), with the validated settings
    (serving/worker_settings.py): a forked worker has it in memory (serving/prefork.py), a spawned one
    unpickles it; either way the parent never loads the model, and a worker never imports pydantic.

    Except with SERVING_SECRETS_DIR: keys there rotate while the server runs, so a worker that starts (or
    is restarted) later reads them as they are then, validating its settings itself as before.

    The first workers start while the parent's model check runs: each imports what it serves with, then
    waits for `verdict` (set once the model is known to load) before it loads the model, so a bad model
    stops the server with the check's one line and no worker's. Once its app is built a worker releases
    `up`: the parent starts the next worker then (serving/listener.py)."""

    def __init__(self, values: dict[str, Any], verdict: Event | None = None, up: Semaphore | None = None) -> None:
        self.values = values
        self.verdict = verdict
        self.up = up

    def __call__(self) -> InferenceFront:
        from serving.app import serve_with

        if self.verdict is not None:
            parent = os.getppid()
            while not self.verdict.wait(_PARENT_CHECK_SECONDS):
                if os.getppid() != parent:  # the parent is gone: nobody will ever say
                    raise SystemExit(0)
        if os.environ.get("SERVING_SECRETS_DIR"):
            from serving.settings import load_settings

            app = serve_with(load_settings())
        else:
            # The same attributes as Settings, without its class.
            app = serve_with(cast("Settings", take_over(self.values)))
        if self.up is not None:
            self.up.release()
        return app
