"""Step 3, check: the ONNX model against the original library's own predictions, row by row.

The ONNX model gets the rows as the server reads them (in the graph's input type: float32, or float64 for
a double graph); the original gets them as they are.
Labels must agree on every row; values (probabilities, regression) within `atol + rtol * |original|`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from importer.imported import Imported
from importer.problems import ImportProblem, first_line

RTOL = 1e-4
ATOL = 1e-4


@dataclass
class OutputCheck:
    name: str
    labels: bool  # compared for equality, not within a tolerance
    rows: int
    max_abs: float
    max_rel: float
    off: int  # rows beyond the tolerance (labels: rows that differ)


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: they reach the user as the step's one line
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


_DTYPES = {"tensor(double)": np.float64, "tensor(string)": np.object_, "tensor(int64)": np.int64}


def run_onnx(model: onnx.ModelProto | Path, values: np.ndarray | pd.DataFrame) -> list[np.ndarray]:
    """The model's outputs on `values`, read as the server reads them: straight into the graph's input type
    (a double graph gets float64, so its double tree thresholds see the values the original saw); a model
    with one input per column gets the frame's columns in order."""
    session = _session(model)
    inputs = session.get_inputs()
    if len(inputs) > 1:
        frame = pd.DataFrame(values)
        feed = {
            i.name: frame.iloc[:, p].to_numpy().astype(_DTYPES.get(i.type, np.float32)).reshape(-1, 1)
            for p, i in enumerate(inputs)
        }
        return [np.asarray(o) for o in session.run(None, feed)]
    graph_input = inputs[0]
    dtype = np.float64 if graph_input.type == "tensor(double)" else np.float32
    rows = np.asarray(values, dtype=np.float64).astype(dtype)
    return [np.asarray(o) for o in session.run(None, {graph_input.name: rows})]


def original(imported: Imported, frame: pd.DataFrame) -> list[np.ndarray]:
    """The original library's answers: [labels, probabilities] for classifiers, [values] for regressors."""
    reference = imported.reference
    if reference is None:
        raise ImportProblem("there is no original model to compare the ONNX model with", "check")
    if imported.text_columns:  # a pipeline over a frame with text columns takes the frame
        answers = [np.asarray(reference.predict(frame))]
        if hasattr(reference, "predict_proba") and hasattr(reference, "classes_"):
            answers.append(np.asarray(reference.predict_proba(frame)))
        return answers
    values = frame.to_numpy(dtype=np.float64)
    if isinstance(reference, tuple):  # an Azure ML SDK v1 pair: scaler.transform, then the ONNX model
        scaler, model_path = reference
        return run_onnx(model_path, scaler.transform(values))
    if type(reference).__name__ == "Booster":
        return _booster(reference, imported, values)
    data = _as_trained(reference, values)
    answers = [np.asarray(reference.predict(data))]
    if hasattr(reference, "predict_proba") and hasattr(reference, "classes_"):
        answers.append(np.asarray(reference.predict_proba(data)))
    return answers


def _as_trained(reference: Any, values: np.ndarray) -> Any:
    """A DataFrame with the training column names when the model was fitted on one (by-name columns)."""
    names = getattr(reference, "feature_names_in_", None)
    return pd.DataFrame(values, columns=list(names)) if names is not None else values


def _booster(booster: Any, imported: Imported, values: np.ndarray) -> list[np.ndarray]:
    """A native XGBoost or LightGBM booster: probabilities (or values) as the library computes them."""
    if imported.library == "xgboost":
        import xgboost

        raw = np.asarray(booster.predict(xgboost.DMatrix(values, feature_names=booster.feature_names)))
    else:
        raw = np.asarray(booster.predict(values))
    if imported.class_labels is None:
        return [raw]
    probabilities = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
    labels = np.asarray(imported.class_labels)[np.argmax(probabilities, axis=1)]
    return [labels, probabilities]


def compare(imported: Imported, frame: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL) -> list[OutputCheck]:
    """Per output of the ONNX model that the original also answers: how far apart on each row."""
    try:
        actual = run_onnx(imported.model, frame if imported.text_columns else frame.to_numpy(dtype=np.float64))
    except Exception as error:  # onnxruntime's many error types
        first = first_line(error)
        raise ImportProblem(f"onnxruntime cannot run the converted model: {first}", "check") from None
    try:
        expected = original(imported, frame)
    except Exception as error:
        raise ImportProblem(
            f"the original model cannot predict these rows ({type(error).__name__}: {error}); "
            "pass rows of its features (--sample)",
            "check",
        ) from None
    names = [o.name for o in imported.model.graph.output]
    return [_one(name, e, a, rtol, atol) for name, e, a in zip(names, expected, actual, strict=False)]


def _one(name: str, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> OutputCheck:
    rows = len(expected)
    if expected.size != actual.size:
        raise ImportProblem(
            f"output {name}: the ONNX model answers shape {actual.shape}, the original {expected.shape}", "check"
        )
    expected, actual = expected.reshape(rows, -1), actual.reshape(rows, -1)
    numeric = np.issubdtype(expected.dtype, np.number) and np.issubdtype(actual.dtype, np.number)
    if not numeric or np.issubdtype(expected.dtype, np.integer):  # labels: equal or not
        differ = np.array(
            [str(_plain(e)) != str(_plain(a)) for e, a in zip(expected.ravel(), actual.ravel(), strict=True)]
        )
        off = int(differ.reshape(rows, -1).any(axis=1).sum())
        return OutputCheck(name, True, rows, float("nan"), float("nan"), off)
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    gap = np.abs(e - a)
    # Relative to the original where it is beyond the absolute tolerance (near 0, atol governs).
    relative = np.where(np.abs(e) > atol, gap / np.maximum(np.abs(e), atol), 0.0)
    off = int((gap > atol + rtol * np.abs(e)).any(axis=1).sum())
    return OutputCheck(name, False, rows, float(gap.max()), float(relative.max()), off)


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return value.decode() if isinstance(value, bytes) else value


def table(checks: list[OutputCheck]) -> str:
    width = max([len("output"), *(len(c.name) for c in checks)])
    lines = [f"{'output':<{width}}  {'rows':>6}  {'max abs diff':>12}  {'max rel diff':>12}  {'rows off':>8}"]
    for c in checks:
        gaps = ("labels", "(equal)") if c.labels else (f"{c.max_abs:.3g}", f"{c.max_rel:.3g}")
        lines.append(f"{c.name:<{width}}  {c.rows:>6}  {gaps[0]:>12}  {gaps[1]:>12}  {c.off:>8}")
    return "\n".join(lines)
