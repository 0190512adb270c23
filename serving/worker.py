"""What a multi-worker server's parent hands each worker: the factory it calls for its app."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

from serving.worker_settings import take_over

if TYPE_CHECKING:
    from serving.front import InferenceFront
    from serving.settings import Settings


class Worker:
    """The factory each worker calls (uvicorn's `factory=True`), pickled to it with the settings the parent
    validated (serving/worker_settings.py): this module is all the parent imports for it (no model, no
    numpy), and a worker never imports pydantic.

    Except with SERVING_SECRETS_DIR: keys there rotate while the server runs, so a worker that starts (or
    is restarted) later reads them as they are then, validating its settings itself as before."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __call__(self) -> InferenceFront:
        from serving.app import serve_with

        if os.environ.get("SERVING_SECRETS_DIR"):
            from serving.settings import load_settings

            return serve_with(load_settings())
        # The same attributes as Settings, without its class.
        return serve_with(cast("Settings", take_over(self.values)))
