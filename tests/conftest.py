from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.https_files import https_files  # noqa: F401 - a fixture for every test module
from tests.serving.server import REPO, RunningServer, running_server

DEMO_MODEL = REPO / "serving" / "model" / "model.onnx"
# The demo model's column names, as its metadata declares them (the training script sets them).
FEATURES: list[str] = json.loads(
    ort.InferenceSession(str(DEMO_MODEL), providers=["CPUExecutionProvider"])
    .get_modelmeta()
    .custom_metadata_map["feature_names"]
)
PRIMARY_KEY = "primary-key-0123456789abcdef"
SECONDARY_KEY = "secondary-key-0123456789abcdef"

# Rainy and dry days at the port of Turku, in the model's feature order.
SAMPLE_ROWS = [
    [5.0, 0.95, 10.0, 180.0, 3.0, 995.0, 2.0],
    [20.0, 0.40, 5.0, 90.0, 16.0, 1025.0, 0.0],
    [8.0, 0.85, 22.0, 250.0, 8.0, 1004.0, 1.0],
]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The server with the demo model and two API keys, as it runs in production."""
    env = {"SERVING_API_KEYS": f"{PRIMARY_KEY},{SECONDARY_KEY}"}
    with running_server(tmp_path_factory.mktemp("server"), env=env) as running:
        yield running


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    """The app in process (`create_app`, the demo model, two API keys), through starlette's TestClient (an
    httpx.Client): routing, keys, protocols and errors, without a process or a socket. What needs a real
    process (transport, timeouts, drain, workers) uses `server`."""
    from pydantic import SecretStr
    from starlette.testclient import TestClient

    from serving.app import create_app, load_runtime
    from serving.settings import Settings

    settings = Settings(api_keys=(SecretStr(PRIMARY_KEY), SecretStr(SECONDARY_KEY)), access_log=False)
    app = create_app(settings, load_runtime(settings))
    headers = {"Authorization": f"Bearer {PRIMARY_KEY}"}
    # Not entered as a context manager: no lifespan, so no signal handlers in the test process.
    http = TestClient(app, base_url="http://testserver", headers=headers, follow_redirects=False)
    yield http
    http.close()
    app.pool.shutdown()


def send(client: httpx.Client, method: str, path: str, authorization: str | None, **kwargs: Any) -> httpx.Response:
    """A request with exactly this Authorization header (none when None), not the client's own key."""
    request = client.build_request(method, path, **kwargs)
    del request.headers["authorization"]
    if authorization is not None:
        request.headers["authorization"] = authorization
    return client.send(request)


@pytest.fixture(scope="session")
def reference() -> ort.InferenceSession:
    """The demo model run directly with onnxruntime: what every protocol must agree with."""
    return ort.InferenceSession(str(DEMO_MODEL), providers=["CPUExecutionProvider"])


def direct_predictions(session: ort.InferenceSession, rows: list[list[float]]) -> tuple[list, list]:
    labels, probabilities = session.run(None, {"input": np.array(rows, dtype=np.float32)})
    return labels.tolist(), probabilities.tolist()


@pytest.fixture
def demo_path() -> Path:
    return DEMO_MODEL
