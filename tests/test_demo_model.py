"""The bundled demo model: one ONNX graph with its metadata, reproducible from the training script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx

from tests.conftest import DEMO_MODEL
from tests.serving.server import REPO


def test_metadata_names_the_model_features_and_classes() -> None:
    model = onnx.load(DEMO_MODEL)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["name"] == "weather-rain"
    assert metadata["version"] == "1"
    assert json.loads(metadata["feature_names"])[0] == "Temperature_C"
    assert len(json.loads(metadata["feature_names"])) == 7
    assert json.loads(metadata["class_labels"]) == [0, 1]
    # The scaler lives inside the graph: nothing is re-fitted at request time.
    assert "Scaler" in {node.op_type for node in model.graph.node}


def test_training_script_reproduces_the_committed_model(tmp_path: Path) -> None:
    output = tmp_path / "model.onnx"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_demo_model.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == DEMO_MODEL.read_bytes()
