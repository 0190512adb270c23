"""MLflow models as MLflow saves them by default (skops for sklearn and LightGBM, ubj for XGBoost), from a
directory or the registry (models:/name/version, models:/name@alias, models:/name/stage); the input
example decides the check."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from importer.__main__ import main
from tests.importer import corpus
from tests.importer.served import direct
from tests.mlflow_registry import ALLOW_FILE_STORE, register


def saved(flavor: str, directory: Path) -> tuple[Any, Path]:
    """An iris classifier saved by mlflow.<flavor>.save_model with its defaults and an input example."""
    import mlflow.lightgbm
    import mlflow.sklearn
    import mlflow.xgboost

    data = corpus.iris()
    fit, save = {
        "sklearn": (corpus.logistic, mlflow.sklearn.save_model),
        "xgboost": (corpus.xgb_classifier, mlflow.xgboost.save_model),
        "lightgbm": (corpus.lgbm_classifier, mlflow.lightgbm.save_model),
    }[flavor]
    model = fit(data.data, data.target)
    # Requirements given: MLflow would otherwise infer them in a subprocess (tens of seconds).
    save(model, str(directory), input_example=data.data.iloc[:12], pip_requirements=[flavor])
    return model, directory


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_an_mlflow_model_saved_with_the_defaults_is_imported(
    flavor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, directory = saved(flavor, tmp_path / "model")
    default = {"sklearn": "model.skops", "lightgbm": "model.skops", "xgboost": "model.ubj"}[flavor]
    assert (directory / default).is_file(), "MLflow's default serialization, not a pickle"
    code = main([str(directory), "-o", str(tmp_path / "model.onnx"), "--name", "iris", "--version", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "check on the MLflow input example (12 rows)" in out
    assert "weak check" not in err
    rows = corpus.iris().data.to_numpy()
    labels, probabilities = direct(tmp_path / "model.onnx", rows)
    assert labels.tolist() == model.predict(corpus.iris().data).tolist()
    np.testing.assert_allclose(probabilities, model.predict_proba(corpus.iris().data), rtol=1e-4, atol=1e-4)


def test_a_skops_file_with_types_nobody_trusted_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import skops.io

    data = corpus.iris()
    skops.io.dump(corpus.lgbm_classifier(data.data, data.target), tmp_path / "model.skops")
    args = [str(tmp_path / "model.skops"), "-o", str(tmp_path / "model.onnx"), "--name", "iris", "--version", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: load: " in err
    assert "lightgbm.sklearn.LGBMClassifier" in err
    assert "--trust " in err
    assert not (tmp_path / "model.onnx").exists()
    trusted = "collections.OrderedDict,lightgbm.basic.Booster,lightgbm.sklearn.LGBMClassifier"
    assert main([*args, "--trust", trusted]) == 0


def test_a_registered_model_by_version_alias_and_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, directory = saved("sklearn", tmp_path / "model")
    tracking = register(tmp_path, directory, "iris", versions=2, alias="champion", stage="Production")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    for key, value in ALLOW_FILE_STORE.items():
        monkeypatch.setenv(key, value)
    for reference in ("models:/iris/2", "models:/iris@champion", "models:/iris/Production"):
        code = main([reference, "-o", str(tmp_path / "model.onnx"), "--name", "iris", "--version", "2"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "check on the MLflow input example (12 rows)" in out


def test_an_unknown_registered_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", os.environ.get("MLFLOW_ALLOW_FILE_STORE", "true"))
    assert main(["models:/nothing/1", "-o", str(tmp_path / "m.onnx"), "--name", "m", "--version", "1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: load: models:/nothing/1: not fetched from the MLflow registry")


def test_a_model_saved_with_another_xgboost_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, directory = saved("xgboost", tmp_path / "model")
    mlmodel = directory / "MLmodel"
    mlmodel.write_text(re.sub(r"xgb_version: .*", "xgb_version: 1.7.6", mlmodel.read_text()))
    assert main([str(directory), "-o", str(tmp_path / "model.onnx"), "--name", "iris", "--version", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: version skew: saved with xgboost 1.7.6, loaded with xgboost " in err
    assert "Fix: import in an environment with xgboost==1.7.6" in err
