"""A real MLflow registry on local files, for models:/ sources (MLflow's file store, allowed explicitly)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ALLOW_FILE_STORE = {"MLFLOW_ALLOW_FILE_STORE": "true"}


def register(tmp_path: Path, model: Path, name: str, versions: int = 1, alias: str = "", stage: str = "") -> str:
    """Log `model` (an ONNX file, as an MLflow onnx model, or an MLflow model directory as it is) and
    register it `versions` times, the last one with `alias` and in `stage` if given; returns the tracking URI."""
    tracking = f"file://{tmp_path / 'mlruns'}"
    logged = model
    if not model.is_dir():
        logged = tmp_path / "logged"
        logged.mkdir(exist_ok=True)
        shutil.copy(model, logged / "model.onnx")
        (logged / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    script = (
        "import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1])\n"
        "for _ in range(int(sys.argv[4])):\n"
        "    run = mlflow.start_run(); mlflow.log_artifacts(sys.argv[2], 'model'); mlflow.end_run()\n"
        "    version = mlflow.register_model(f'runs:/{run.info.run_id}/model', sys.argv[3]).version\n"
        "if sys.argv[5]:\n"
        "    mlflow.MlflowClient().set_registered_model_alias(sys.argv[3], sys.argv[5], version)\n"
        "if sys.argv[6]:\n"
        "    mlflow.MlflowClient().transition_model_version_stage(sys.argv[3], version, sys.argv[6])\n"
    )
    command = [sys.executable, "-c", script, tracking, str(logged), name, str(versions), alias, stage]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, **ALLOW_FILE_STORE})
    return tracking
