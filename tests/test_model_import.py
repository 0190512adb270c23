"""python -m importer: users' models become the server's one-graph ONNX, checked against the original."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from serving.runtime import ModelRuntime
from tests.serving.server import REPO

RNG = np.random.default_rng(7)
X = RNG.normal(size=(120, 4)).astype(np.float32)
LABELS = np.where(X[:, 0] + X[:, 1] > 0, "rain", "dry")


def run_import(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "importer", *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_a_pickled_pipeline_with_string_labels_is_served_as_trained(tmp_path: Path) -> None:
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, LABELS)
    joblib.dump(pipeline, tmp_path / "model.pkl")
    np.savetxt(tmp_path / "rows.csv", X[:30], delimiter=",")  # no header: in the model's order
    result = run_import(tmp_path / "model.pkl", "-o", tmp_path / "model.onnx", "--name", "rain", "--version", "3",
                        "--features", "t,h,w,p", "--sample", tmp_path / "rows.csv")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "unpickling runs the code in the file" in result.stderr
    assert "check on --sample rows.csv (30 rows)" in result.stdout
    assert "label              30        labels       (equal)         0" in result.stdout
    digest = result.stdout.split("sha256 ")[1].split()[0]
    assert f"pulumi config set --path 'mlserve:model.sha256' {digest}" in result.stdout
    info = metadata(tmp_path / "model.onnx")
    assert (info["name"], info["version"]) == ("rain", "3")
    assert json.loads(info["feature_names"]) == ["t", "h", "w", "p"]
    assert json.loads(info["class_labels"]) == ["dry", "rain"]
    assert json.loads(info["sample_input"]) == [float(v) for v in np.loadtxt(tmp_path / "rows.csv", delimiter=",")[0]]
    # The drift report compares served predictions with these: the labels the model gave on the rows.
    predicted = Counter(pipeline.predict(X[:30]))
    expected = {str(label): round(count / 30, 6) for label, count in predicted.items()}
    assert json.loads(info["baseline"])["predictions"]["frequencies"] == expected
    served = ModelRuntime(tmp_path / "model.onnx").predict(X[:10], probabilities=True)
    assert list(served.labels) == list(pipeline.predict(X[:10]))
    np.testing.assert_allclose(served.probabilities, pipeline.predict_proba(X[:10]), atol=1e-5)


def test_an_azure_ml_sdk_v1_scaler_and_onnx_pair_become_one_graph(tmp_path: Path) -> None:
    scaler = StandardScaler().fit(X)
    svc = SVC(probability=True, random_state=0).fit(scaler.transform(X), LABELS)
    joblib.dump(scaler, tmp_path / "scaler.pkl")
    exported = to_onnx(svc, initial_types=[("float_input", FloatTensorType([None, 4]))],
                       options={id(svc): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})  # fmt: skip
    (tmp_path / "svc.onnx").write_bytes(exported.SerializeToString())
    np.savetxt(tmp_path / "rows.csv", X[:8], delimiter=",", header="a,b,c,d", comments="")
    result = run_import(tmp_path / "svc.onnx", "--scaler", tmp_path / "scaler.pkl", "-o", tmp_path / "merged.onnx",
                        "--name", "weather-rain", "--version", "2", "--sample", tmp_path / "rows.csv")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "check on --sample rows.csv (8 rows)" in result.stdout
    merged = onnx.load(str(tmp_path / "merged.onnx"))
    assert len(merged.graph.input) == 1, "one input: the server's shape"
    assert json.loads(metadata(tmp_path / "merged.onnx")["class_labels"]) == ["dry", "rain"]
    served = ModelRuntime(tmp_path / "merged.onnx").predict(X[:20], probabilities=True)
    assert list(served.labels) == list(svc.predict(scaler.transform(X[:20])))
    np.testing.assert_allclose(served.probabilities, svc.predict_proba(scaler.transform(X[:20])), atol=1e-4)


def test_an_mlflow_sklearn_model_directory(tmp_path: Path) -> None:
    model_dir = tmp_path / "mlflow-model"
    model_dir.mkdir()
    regressor = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 0.5, -1.0]))
    joblib.dump(regressor, model_dir / "model.pkl")
    signature = json.dumps([{"name": n, "type": "float"} for n in ("a", "b", "c", "d")])
    (model_dir / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n"
        f"signature:\n  inputs: '{signature}'\n"
    )
    result = run_import(model_dir, "-o", tmp_path / "model.onnx", "--name", "lin", "--version", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(metadata(tmp_path / "model.onnx")["feature_names"]) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "m.pkl").write_bytes(b"not a pickle"), "not a joblib or pickle file"),
        (lambda d: joblib.dump({"weights": [1, 2]}, d / "m.pkl"), "a dict is not a fitted estimator"),
        (lambda d: joblib.dump(LogisticRegression(), d / "m.pkl"), "the LogisticRegression is not fitted: fit it"),
        (lambda d: (d / "m.txt").write_text("x"), "expected .pkl, .joblib, .skops, .onnx, an XGBoost"),
        (lambda d: (d / "m.onnx").write_bytes(b"\x00garbage"), "not a valid ONNX model"),
    ],
)
def test_what_cannot_be_imported_is_said_in_one_line(tmp_path: Path, make: object, message: str) -> None:
    make(tmp_path)  # type: ignore[operator]
    (source,) = [p for p in tmp_path.iterdir() if p.name.startswith("m.")]
    result = run_import(source, "-o", tmp_path / "out.onnx", "--name", "m", "--version", "1")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_a_scaler_of_another_width_is_not_a_pair(tmp_path: Path) -> None:
    joblib.dump(StandardScaler().fit(X[:, :3]), tmp_path / "scaler.pkl")
    svc = LogisticRegression().fit(X, LABELS)
    exported = to_onnx(svc, initial_types=[("x", FloatTensorType([None, 4]))], options={id(svc): {"zipmap": False}})
    (tmp_path / "m.onnx").write_bytes(exported.SerializeToString())
    result = run_import(tmp_path / "m.onnx", "--scaler", tmp_path / "scaler.pkl", "-o", tmp_path / "o.onnx",
                        "--name", "m", "--version", "1")  # fmt: skip
    assert result.returncode == 2
    assert "the scaler takes 3 features, the model 4: not a pair" in result.stderr


def test_a_name_the_stack_would_refuse_is_refused_here() -> None:
    from importer.__main__ import NAME
    from stacks.config import NAME as STACK_NAME

    assert NAME == STACK_NAME
    result = run_import("model.pkl", "-o", "out.onnx", "--name", "Iris_Model", "--version", "1")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --name 'Iris_Model': lowercase letters, digits and '-'")


def test_the_importer_runs_from_any_directory(tmp_path: Path) -> None:
    joblib.dump(LinearRegression().fit(X, X @ np.array([1.0, 2.0, 0.5, -1.0])), tmp_path / "model.pkl")
    command = [
        sys.executable,
        str(REPO / "importer"),
        "model.pkl",
        "-o",
        "model.onnx",
        "--name",
        "lin",
        "--version",
        "1",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.onnx").is_file()


def test_a_model_saved_by_another_scikit_learn_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.base

    monkeypatch.setattr(sklearn.base, "__version__", "1.5.2")  # what the pickle records as its version
    joblib.dump(LinearRegression().fit(X, X[:, 0]), tmp_path / "model.pkl")
    result = run_import(tmp_path / "model.pkl", "-o", tmp_path / "model.onnx", "--name", "lin", "--version", "1")
    assert result.returncode == 0, result.stderr
    assert "warning: version skew: saved with scikit-learn 1.5.2, loaded with scikit-learn " in result.stderr
    assert "Fix: import in an environment with scikit-learn==1.5.2" in result.stderr


def test_a_hand_exported_classifier_answers_its_string_classes_once_imported(tmp_path: Path) -> None:
    from tests.importer.served import score, scoring

    classifier = LogisticRegression().fit(X, LABELS)
    exported = to_onnx(classifier, initial_types=[("input", FloatTensorType([None, 4]))],
                       options={id(classifier): {"zipmap": False}})  # fmt: skip
    (tmp_path / "hand.onnx").write_bytes(exported.SerializeToString())
    result = run_import(tmp_path / "hand.onnx", "-o", tmp_path / "model.onnx", "--name", "rain", "--version", "1")
    assert result.returncode == 0, result.stderr
    with scoring(tmp_path / "model.onnx") as http:
        answer = score(http, X[:3].astype(np.float64), "predict_proba")
    assert answer["classes"] == ["dry", "rain"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sample", "absent.csv"], "error: check: --sample absent.csv: not readable as CSV"),
        (["--scaler", "absent.pkl"], "error: load: --scaler goes with an .onnx SOURCE"),
        (["-o", "/proc/no/such/dir/m.onnx"], "error: write: /proc/no/such/dir/m.onnx: "),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    joblib.dump(LinearRegression().fit(X, X[:, 0]), tmp_path / "model.pkl")
    output = [] if "-o" in extra else ["-o", tmp_path / "m.onnx"]
    result = subprocess.run(
        [sys.executable, str(REPO / "importer"), "model.pkl", *output, "--name", "m", "--version", "1", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [
        line for line in result.stderr.splitlines() if line.startswith(message)
    ]
    assert message in result.stderr
