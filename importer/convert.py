"""Turn what users have into the one-graph ONNX model the server runs.

- a scikit-learn estimator or pipeline saved with joblib or pickle;
- the Azure ML SDK v1 seeds' two files, a fitted scaler (`scaler.pkl`) and an ONNX model (`svc.onnx`),
  merged into one graph that scales, then predicts;
- an MLflow model directory (MLmodel): the onnx flavor as is, the sklearn flavor converted.

The result carries `name`, `version`, `feature_names`, `class_labels` (classifiers) and
`sample_input` (one row, for smoke tests) metadata, and is checked against the original on sample
rows. Training libraries (scikit-learn, skl2onnx) live here, in the development environment, never
in the serving image. Unpickling runs code: import only files you trust.
"""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import yaml

UNPICKLING_WARNING = "unpickling runs the code in the file: import only models you trust"


class ImportProblem(Exception):
    """What cannot be imported, and what to do instead."""


@dataclass
class Imported:
    model: onnx.ModelProto
    n_features: int
    feature_names: list[str] | None
    class_labels: list | None
    reference: Any | None  # the original (an estimator, or the scaler + ONNX pair) to compare with


def load_pickle(path: Path) -> Any:
    warnings.warn(f"{path}: {UNPICKLING_WARNING}", stacklevel=2)
    try:
        import joblib

        return joblib.load(path)
    except Exception:  # not a joblib file: plain pickle
        with path.open("rb") as file:
            try:
                return pickle.load(file)  # noqa: S301 - documented: the user's own model
            except Exception as error:
                raise ImportProblem(f"{path}: not a joblib or pickle file ({type(error).__name__}: {error})") from None


def _n_features(estimator: Any, features: list[str] | None) -> int:
    if hasattr(estimator, "n_features_in_"):
        return int(estimator.n_features_in_)
    if features:
        return len(features)
    raise ImportProblem("the estimator does not say how many features it takes: pass --features a,b,c")


def _feature_names(estimator: Any, features: list[str] | None) -> list[str] | None:
    if features:
        return features
    names = getattr(estimator, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else None


def from_estimator(estimator: Any, features: list[str] | None = None) -> Imported:
    """A fitted scikit-learn estimator or pipeline, converted with skl2onnx (no ZipMap: plain tensors)."""
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        raise ImportProblem("skl2onnx is not installed: pip install -r requirements-dev.txt") from None
    if not hasattr(estimator, "predict"):
        raise ImportProblem(f"a {type(estimator).__name__} is not a fitted estimator (it has no predict)")
    n = _n_features(estimator, features)
    names = _feature_names(estimator, features)
    if names is not None and len(names) != n:
        raise ImportProblem(f"{len(names)} feature names for a model that takes {n} features")
    classifier = hasattr(estimator, "classes_")
    options = {"zipmap": False} if classifier else {}
    try:
        model = to_onnx(
            estimator,
            initial_types=[("input", FloatTensorType([None, n]))],
            options={type(_final_step(estimator)): options} if options else None,
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    except Exception as error:  # skl2onnx: MissingShapeCalculator, RuntimeError, ...
        raise ImportProblem(
            f"skl2onnx cannot convert a {type(estimator).__name__} ({type(error).__name__}: {error}); "
            "export it to ONNX yourself and import the .onnx file"
        ) from None
    labels = [_plain(c) for c in estimator.classes_] if classifier else None
    return Imported(model, n, names, labels, estimator)


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def from_onnx(path: Path, features: list[str] | None = None) -> Imported:
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:
        raise ImportProblem(f"{path}: not a valid ONNX model ({type(error).__name__}: {error})") from None
    (graph_input,) = _single_input(model, path)
    n = _input_width(graph_input, features, path)
    return Imported(model, n, features or _metadata_list(model, "feature_names"), _onnx_class_labels(model), None)


def _metadata_list(model: onnx.ModelProto, key: str) -> list | None:
    raw = {p.key: p.value for p in model.metadata_props}.get(key)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _onnx_class_labels(model: onnx.ModelProto) -> list | None:
    """The labels a classifier was exported with (ai.onnx.ml *Classifier nodes carry them)."""
    known = _metadata_list(model, "class_labels")
    if known is not None:
        return known
    for node in model.graph.node:
        if node.domain == "ai.onnx.ml" and node.op_type.endswith("Classifier"):
            for attribute in node.attribute:
                if attribute.name == "classlabels_strings":
                    return [v.decode() for v in attribute.strings]
                if attribute.name in ("classlabels_ints", "classlabels_int64s"):
                    return list(attribute.ints)
    return None


def _single_input(model: onnx.ModelProto, path: Path) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ImportProblem(
            f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); the server takes one 2-D float "
            "input: re-export with the columns concatenated (skl2onnx: initial_types=[('input', "
            "FloatTensorType([None, n_features]))])"
        )
    return inputs


def _input_width(graph_input: onnx.ValueInfoProto, features: list[str] | None, path: Path) -> int:
    dims = graph_input.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value"):
        return int(dims[1].dim_value)
    if features:
        return len(features)
    raise ImportProblem(f"{path}: the input's width is not fixed: pass --features a,b,c")


def merge_scaler(scaler: Any, model_path: Path, features: list[str] | None = None) -> Imported:
    """The seeds' layout: `scaler.transform` then the ONNX model, as one graph."""
    if not hasattr(scaler, "transform"):
        raise ImportProblem(f"a {type(scaler).__name__} is not a fitted scaler (it has no transform)")
    n = _n_features(scaler, features)
    downstream = from_onnx(model_path, features)
    if n != downstream.n_features:
        raise ImportProblem(f"the scaler takes {n} features, the model {downstream.n_features}: not a pair")
    second = downstream.model
    domains = {o.domain or "": o.version for o in second.opset_import}
    # merge_models wants one IR version and one opset per domain: the scaler is exported to match.
    first = onnx.compose.add_prefix(_with_opsets(scaler, n, domains), "scaler_")
    second = onnx.compose.add_prefix(second, "model_")
    first.ir_version = second.ir_version = max(first.ir_version, second.ir_version)
    (scaled,) = [o.name for o in first.graph.output]
    (model_input,) = _single_input(second, model_path)
    try:
        merged = onnx.compose.merge_models(first, second, io_map=[(scaled, model_input.name)])
    except Exception as error:
        raise ImportProblem(f"cannot merge the scaler into {model_path} ({type(error).__name__}: {error})") from None
    onnx.checker.check_model(merged)
    names = downstream.feature_names or _feature_names(scaler, features)
    return Imported(merged, downstream.n_features, names, downstream.class_labels, (scaler, model_path))


def _with_opsets(scaler: Any, n: int, domains: dict[str, int]) -> onnx.ModelProto:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    target = {"": domains.get("", 17)}
    if "ai.onnx.ml" in domains:
        target["ai.onnx.ml"] = domains["ai.onnx.ml"]
    return to_onnx(scaler, initial_types=[("input", FloatTensorType([None, n]))], target_opset=target)


def from_mlflow(directory: Path, features: list[str] | None = None) -> Imported:
    mlmodel = yaml.safe_load((directory / "MLmodel").read_text()) or {}
    flavors = mlmodel.get("flavors") or {}
    names = features or _mlflow_feature_names(mlmodel)
    if "onnx" in flavors:
        return from_onnx(directory / flavors["onnx"].get("data", "model.onnx"), names)
    if "sklearn" in flavors:
        pickled = directory / flavors["sklearn"].get("pickled_model", "model.pkl")
        estimator = load_pickle(pickled)
        return from_estimator(estimator, names)
    raise ImportProblem(f"{directory}: MLflow flavors {', '.join(flavors) or 'none'}; only onnx and sklearn are served")


def _mlflow_feature_names(mlmodel: dict) -> list[str] | None:
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return None
    try:
        columns = json.loads(raw)
    except ValueError:
        return None
    names = [c.get("name") for c in columns if isinstance(c, dict)]
    return names if names and all(isinstance(n, str) for n in names) else None


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, rows: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(o) for o in session.run(None, {session.get_inputs()[0].name: rows.astype(np.float32)})]


def _compared(imported: Imported, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(original, imported) answers on `rows`: labels and probabilities, or values."""
    actual = _run(_session(imported.model), rows)
    reference = imported.reference
    if isinstance(reference, tuple):  # the seeds' pair: scaler.transform, then their ONNX model
        scaler, model_path = reference
        return list(zip(_run(_session(model_path), scaler.transform(rows)), actual, strict=True))
    pairs = [(np.asarray(reference.predict(rows)), actual[0])]
    if hasattr(reference, "predict_proba") and len(actual) > 1:
        pairs.append((np.asarray(reference.predict_proba(rows)), actual[1]))
    return pairs


def max_difference(imported: Imported, rows: np.ndarray) -> float | None:
    """Largest absolute difference from the original on `rows` (inf: a label differs; None: no original)."""
    if imported.reference is None:
        return None
    worst = 0.0
    for expected, actual in _compared(imported, rows):
        if expected.size != actual.size:
            raise ImportProblem(f"the ONNX model answers shape {actual.shape}, the original {expected.shape}")
        expected, actual = expected.reshape(-1), actual.reshape(-1)
        if np.issubdtype(expected.dtype, np.number) and np.issubdtype(actual.dtype, np.number):
            worst = max(worst, float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64)))))
        elif [str(_plain(v)) for v in expected] != [str(_plain(v)) for v in actual]:
            return float("inf")
    return worst


def finish(imported: Imported, name: str, version: str, sample: list[float]) -> onnx.ModelProto:
    metadata = {"name": name, "version": version, "sample_input": json.dumps(sample)}
    if imported.feature_names:
        metadata["feature_names"] = json.dumps(imported.feature_names)
    if imported.class_labels is not None:
        metadata["class_labels"] = json.dumps(imported.class_labels)
    model = imported.model
    kept = {p.key: p.value for p in model.metadata_props if p.key not in metadata}
    onnx.helper.set_model_props(model, {**kept, **metadata})
    onnx.checker.check_model(model)
    return model
