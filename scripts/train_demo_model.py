"""Train the bundled demo model: will it rain at the port of Turku?

Generates weather observations with a fixed seed, fits StandardScaler + SVC
(probability=True) and exports the whole pipeline as one ONNX graph, so the
server needs neither scikit-learn nor a re-fitted scaler at request time.

    .venv/bin/python scripts/train_demo_model.py [--output serving/model/model.onnx]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

MODEL_NAME = "weather-rain"
MODEL_VERSION = "1"
FEATURES = [
    "Temperature_C",
    "Humidity",
    "Wind_speed_kmph",
    "Wind_bearing_degrees",
    "Visibility_km",
    "Pressure_millibars",
    "Current_weather_condition",
]
CLASSES = [0, 1]  # 0: no rain, 1: rain
SEED = 20260101
ROWS = 2000
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "serving" / "model" / "model.onnx"


def generate_observations(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plausible Baltic coastal weather; rain follows humidity, pressure and visibility."""
    rng = np.random.default_rng(seed)
    temperature = rng.normal(7.0, 8.0, rows)
    humidity = np.clip(rng.normal(0.78, 0.12, rows), 0.2, 1.0)
    wind_speed = np.abs(rng.normal(14.0, 8.0, rows))
    wind_bearing = rng.uniform(0.0, 360.0, rows)
    visibility = np.clip(rng.normal(12.0, 5.0, rows), 0.1, 16.1)
    pressure = rng.normal(1012.0, 9.0, rows)
    condition = rng.integers(0, 3, rows).astype(float)  # 0 clear, 1 cloudy, 2 overcast
    score = (
        9.0 * (humidity - 0.8)
        - 0.18 * (pressure - 1012.0)
        - 0.25 * (visibility - 12.0)
        + 0.6 * (condition - 1.0)
        + 0.03 * wind_speed
        + rng.normal(0.0, 0.8, rows)
    )
    labels = (score > 0.5).astype(np.int64)
    features = np.column_stack(
        [temperature, humidity, wind_speed, wind_bearing, visibility, pressure, condition]
    ).astype(np.float32)
    return features, labels


def train_and_export(output: Path) -> None:
    features, labels = generate_observations(ROWS, SEED)
    pipeline = make_pipeline(StandardScaler(), SVC(probability=True, random_state=SEED))
    pipeline.fit(features, labels)
    svc = pipeline.steps[-1][1]
    graph = to_onnx(
        pipeline,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        # Probabilities as a plain [N, classes] tensor instead of a list of maps.
        options={id(svc): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # skl2onnx lists opsets in set order, which changes with string hashing: sort for identical bytes.
    opsets = sorted(graph.opset_import, key=lambda opset: opset.domain)
    del graph.opset_import[:]
    graph.opset_import.extend(opsets)
    graph.doc_string = "Rain (1) or no rain (0) at the port of Turku, from 7 weather features."
    metadata = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "feature_names": json.dumps(FEATURES),
        "class_labels": json.dumps(CLASSES),
    }
    onnx.helper.set_model_props(graph, metadata)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(graph, output)
    accuracy = float((pipeline.predict(features) == labels).mean())
    print(f"wrote {output} ({output.stat().st_size} bytes), training accuracy {accuracy:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    train_and_export(parser.parse_args().output)


if __name__ == "__main__":
    main()
