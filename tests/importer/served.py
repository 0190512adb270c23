"""What an imported model answers: through onnxruntime directly, and through the server's `/score`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort


def direct(path: Path, rows: np.ndarray) -> list[np.ndarray]:
    """onnxruntime on the rows as they are (float64 for a graph that takes doubles)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    dtype = np.float64 if graph_input.type == "tensor(double)" else np.float32
    return [np.asarray(o) for o in session.run(None, {graph_input.name: rows.astype(dtype)})]


@contextmanager
def scoring(path: Path) -> Iterator[httpx.Client]:
    """The server's app for this model, in process (as tests/conftest.py's `client`, without keys)."""
    from starlette.testclient import TestClient

    from serving.app import create_app, load_runtime
    from serving.settings import Settings

    settings = Settings(model=path, access_log=False)
    app = create_app(settings, load_runtime(settings))
    http = TestClient(app, base_url="http://testserver", follow_redirects=False)
    try:
        yield http
    finally:
        http.close()
        app.pool.shutdown()


def score(http: httpx.Client, rows: np.ndarray, method: str = "predict") -> dict[str, Any]:
    response = http.post("/score", json={"data": rows.tolist(), "method": method})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer
