"""A captured week of requests to the demo model, in SageMaker Data Capture's layout, with a known
shift in chosen columns; and the demo model with a baseline, as `python -m importer` would store it."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd

from importer.baseline import baseline
from serving.runtime import ModelRuntime
from tests.conftest import DEMO_MODEL
from tests.serving.server import REPO

UNTIL = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=7)
ENDPOINT = "mlserve-prod"


def _trainer() -> Any:
    spec = importlib.util.spec_from_file_location("train_demo_model", REPO / "scripts" / "train_demo_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAINER = _trainer()
FEATURES: list[str] = TRAINER.FEATURES

# Known shifts: columns the demo model barely uses, so that its predictions stay as they were.
SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Temperature_C": lambda v: v + 8.0,  # one standard deviation warmer
    "Wind_bearing_degrees": lambda v: 180.0 + v / 2,  # the wind turned to the south and west
}


def observations(rows: int, seed: int, shifted: tuple[str, ...] = ()) -> np.ndarray:
    features, _ = TRAINER.generate_observations(rows, seed)
    values = features.astype(np.float64)
    for name in shifted:
        column = FEATURES.index(name)
        values[:, column] = SHIFTS[name](values[:, column])
    return values


def baseline_rows(path: Path, rows: int = 2000) -> Path:
    """The rows a model would have been imported with, as CSV with a header."""
    pd.DataFrame(observations(rows, 1), columns=FEATURES).to_csv(path, index=False)
    return path


def model_with_baseline(path: Path, predictions: bool = True) -> Path:
    """The demo model carrying the importer's baseline metadata for 2000 rows of its kind of weather."""
    frame = pd.DataFrame(observations(2000, 1), columns=FEATURES)
    labels = ModelRuntime(DEMO_MODEL).predict(frame.to_numpy(dtype=np.float32)).labels if predictions else None
    model = onnx.load(str(DEMO_MODEL))
    onnx.helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, "baseline": baseline(frame, labels)}
    )
    onnx.save_model(model, str(path))
    return path


@dataclass
class Layout:
    """How one kind of endpoint captures: the folder below the endpoint and the bodies it writes."""

    folder: str
    input_type: str
    output_type: str

    def bodies(self, rows: np.ndarray, labels: np.ndarray, order: list[str]) -> tuple[str, str]:
        if self.input_type == "text/csv":  # no header: the model's column order, as SageMaker sends it
            body = "\n".join(",".join(f"{v:.6g}" for v in row) for row in rows)
            return body, "\n".join(str(int(label)) for label in labels)
        index = [FEATURES.index(name) for name in order]
        data = [[round(float(row[i]), 6) for i in index] for row in rows]
        return json.dumps({"dataframe_split": {"columns": order, "data": data}}), json.dumps(
            {"predictions": [int(label) for label in labels]}
        )


# Our ACI/AKS capture: JSON bodies, columns by name (here in another order than the model's).
OURS = Layout("3", "application/json", "application/json")
# SageMaker Data Capture of CSV requests.
SAGEMAKER = Layout("AllTraffic", "text/csv", "text/csv")


def records(
    layout: Layout, shifted: tuple[str, ...], seed: int, until: datetime, rows_per_request: int = 5
) -> Iterator[tuple[str, str]]:
    """(key below the endpoint, JSON Lines) for each hour of the week before `until`: two requests an hour."""
    runtime = ModelRuntime(DEMO_MODEL)
    since = until - timedelta(days=7)
    hours = int((until - since).total_seconds() // 3600)
    values = observations(hours * 2 * rows_per_request, seed, shifted)
    order = list(reversed(FEATURES))
    for hour in range(hours):
        start = since + timedelta(hours=hour)
        lines = []
        for request in range(2):
            first = (hour * 2 + request) * rows_per_request
            rows = values[first : first + rows_per_request]
            labels = runtime.predict(rows.astype(np.float32)).labels
            data_in, data_out = layout.bodies(rows, labels, order)
            moment = start + timedelta(minutes=17 + 20 * request)
            lines.append(json.dumps(capture_record(layout, data_in, data_out, moment)))
        yield f"{layout.folder}/{start:%Y/%m/%d/%H}/{uuid.uuid4()}.jsonl", "\n".join(lines) + "\n"


def capture_record(layout: Layout, data_in: str, data_out: str, moment: datetime) -> dict[str, Any]:
    encoding = "CSV" if layout.input_type == "text/csv" else "JSON"
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": layout.input_type,
                "mode": "INPUT",
                "data": data_in,
                "encoding": encoding,
            },
            "endpointOutput": {
                "observedContentType": layout.output_type,
                "mode": "OUTPUT",
                "data": data_out,
                "encoding": encoding,
            },
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "modelName": "weather-rain",
            "modelVersion": "1",
        },
        "eventVersion": "0",
    }


def write_week(
    root: Path, layout: Layout, shifted: tuple[str, ...] = (), seed: int = 2, until: datetime = UNTIL
) -> Path:
    """A week under root/<endpoint>/; returns root/<endpoint>, the report's --source."""
    for key, text in records(layout, shifted, seed, until):
        path = root / ENDPOINT / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / ENDPOINT
