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


def every_route(http: httpx.Client, frame: Any, model_name: str) -> dict[str, list[Any]]:
    """The predictions of each route for the frame's rows: /score, /invocations (JSON by column name, CSV
    with a header) and v2 infer (the input tensor as the model's metadata describes it)."""
    import csv
    import io

    rows = frame.to_numpy(dtype=np.float64)
    columns = [str(c) for c in frame.columns]
    found: dict[str, list[Any]] = {"/score": score(http, rows)["predictions"]}
    split = {"dataframe_split": {"columns": columns, "data": rows.tolist()}}
    response = http.post("/invocations", json=split)
    assert response.status_code == 200, response.text
    found["/invocations JSON"] = response.json()["predictions"]
    text = io.StringIO()
    frame.to_csv(text, index=False)
    response = http.post(
        "/invocations", content=text.getvalue(), headers={"content-type": "text/csv", "accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
    found["/invocations CSV"] = [row[0] for row in csv.reader(io.StringIO(response.text))]
    metadata = http.get(f"/v2/models/{model_name}").json()
    (tensor,) = metadata["inputs"]
    inputs = [
        {
            "name": tensor["name"],
            "shape": list(rows.shape),
            "datatype": tensor["datatype"],
            "data": rows.ravel().tolist(),
        }
    ]
    response = http.post(f"/v2/models/{model_name}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    found["v2 infer"] = response.json()["outputs"][0]["data"]
    return found
