"""Step 2, convert: a loaded model as the one-graph ONNX model the server runs: one 2-D float input, or
one input per column when some columns are text.

scikit-learn estimators and pipelines go through skl2onnx here (no ZipMap: plain tensors): tree models
with a double input and double thresholds (importer/trees.py), a `ColumnTransformer` that picks numeric
columns by name through one input split into named columns, and one with text columns (an encoder fitted
on strings) through one typed input per column, which the server maps by name. XGBoost and LightGBM:
importer/boosters.py; ONNX files and the Azure ML SDK v1 scaler + ONNX pair: importer/onnx_files.py.
Training libraries live here, in the development environment, never in the serving image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from importer.boosters import from_booster, register_with_skl2onnx
from importer.imported import Imported, feature_names, graph_inputs, n_features, plain
from importer.onnx_files import from_onnx, merge_scaler
from importer.problems import ImportProblem, first_line
from importer.sources import Loaded
from importer.trees import sklearn_trees, with_double_thresholds

OPSETS = {"": 17, "ai.onnx.ml": 3}


def convert(loaded: Loaded, features: list[str] | None) -> Imported:
    features = features or loaded.feature_names
    if loaded.library == "onnx":
        imported = from_onnx(Path(loaded.model), features)
    elif loaded.library in ("xgboost", "lightgbm"):
        imported = from_booster(loaded.model, loaded.library, features)
    else:
        imported = from_estimator(loaded.model, features)
    imported.notes = [*loaded.notes, *imported.notes]
    return imported


def _check_fitted(estimator: Any) -> None:
    if not hasattr(estimator, "predict"):
        raise ImportProblem(f"a {type(estimator).__name__} is not a fitted estimator (it has no predict)")
    try:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator)
    except NotFittedError:
        raise ImportProblem(
            f"the {type(estimator).__name__} is not fitted: fit it before saving, then import it again"
        ) from None
    except TypeError:  # not a scikit-learn estimator: the converter says what it lacks
        pass


def from_estimator(estimator: Any, features: list[str] | None = None) -> Imported:
    """A fitted scikit-learn estimator or pipeline, converted with skl2onnx."""
    try:
        import skl2onnx  # noqa: F401 - said here, once, when missing
    except ImportError:
        raise ImportProblem("skl2onnx is not installed: pip install -r requirements-dev.txt") from None
    _check_fitted(estimator)
    n = n_features(estimator, features)
    names = feature_names(estimator, features)
    if names is not None and len(names) != n:
        raise ImportProblem(f"{len(names)} feature names for a model that takes {n} features")
    classifier = hasattr(estimator, "classes_")
    by_name = _columns_by_name(estimator)
    if by_name and names is None:
        raise ImportProblem("a ColumnTransformer picks columns by name, but the model has no feature names")
    columns = names if by_name else None
    text = text_columns(estimator)
    notes: list[str] = []
    model = None
    if sklearn_trees(estimator):  # trees compare float32(x) with double thresholds: a double graph keeps them
        try:
            model = _double_graph(estimator, n, columns, classifier, set(text))
        except Exception:  # a step without a double converter or kernel: float32 thresholds, said
            notes.append("a step has no float64 converter: tree thresholds are float32, rows near one may differ")
    if model is None:
        model = _skl2onnx(estimator, n, columns, False, classifier, set(text))
        if by_name and not text:
            model = _one_input(model, names or [], onnx.TensorProto.FLOAT)
    labels = [plain(c) for c in estimator.classes_] if classifier else None
    return Imported(model, n, names, labels, estimator, "sklearn", notes, text)


def text_columns(estimator: Any) -> dict[str, list[str]]:
    """Columns a ColumnTransformer sends by name to an encoder fitted on strings, with its categories."""
    from sklearn.compose import ColumnTransformer

    found: dict[str, list[str]] = {}
    stack = [estimator]
    while stack:
        step = stack.pop()
        stack += [s for _, s in getattr(step, "steps", [])]
        if not isinstance(step, ColumnTransformer):
            continue
        for _, transformer, columns in step.transformers_:
            names = [columns] if isinstance(columns, str) else list(np.ravel(columns)) if columns is not None else []
            if isinstance(transformer, str) or not all(isinstance(c, str) for c in names):
                continue
            encoders = [transformer, *(s for _, s in getattr(transformer, "steps", []))]
            for encoder in encoders:
                categories = getattr(encoder, "categories_", None)
                if categories is not None and len(categories) == len(names):
                    for name, known in zip(names, categories, strict=True):
                        if np.asarray(known).dtype.kind in "OUS":
                            found[name] = [str(c) for c in known if isinstance(c, str)]
    return found


def _double_graph(
    estimator: Any, n: int, columns: list[str] | None, classifier: bool, text: set[str]
) -> onnx.ModelProto:
    """A float64 graph with scikit-learn's double thresholds, refused (raises) unless onnxruntime runs it."""
    model = _skl2onnx(estimator, n, columns, True, classifier, text)
    if with_double_thresholds(model, estimator) < len(sklearn_trees(estimator)):
        raise ImportProblem("some trees did not match the converted graph", "convert")
    if columns and not text:
        model = _one_input(model, columns, onnx.TensorProto.DOUBLE)
    import onnxruntime as ort

    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return model


def _skl2onnx(
    estimator: Any, n: int, columns: list[str] | None, double: bool, classifier: bool, text: set[str] | None = None
) -> onnx.ModelProto:
    """skl2onnx's graph: one [N, n] input, or one [N, 1] input per named column (strings for `text`)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    register_with_skl2onnx()

    tensor = DoubleTensorType if double else FloatTensorType
    text = text or set()
    initial = (
        [(c, (StringTensorType if c in text else tensor)([None, 1])) for c in columns]
        if columns
        else [("input", tensor([None, n]))]
    )
    try:
        graph: onnx.ModelProto = to_onnx(
            estimator, initial_types=initial, options={"zipmap": False} if classifier else None, target_opset=OPSETS
        )
        return graph
    except Exception as error:  # skl2onnx: MissingShapeCalculator, RuntimeError, ...
        first = first_line(error)
        raise ImportProblem(
            f"skl2onnx cannot convert the {_describe(estimator)} ({type(error).__name__}: {first}); "
            "replace that step with one skl2onnx supports, or export to ONNX yourself and import the .onnx file",
            "convert",
        ) from None


def _describe(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"{type(estimator).__name__}({' -> '.join(f'{n}: {type(s).__name__}' for n, s in steps)})"
    return type(estimator).__name__


def _columns_by_name(estimator: Any) -> bool:
    """Whether a ColumnTransformer in the pipeline selects columns by name."""
    from sklearn.compose import ColumnTransformer

    def named(columns: Any) -> bool:
        values = [columns] if isinstance(columns, str) else list(np.ravel(columns)) if columns is not None else []
        return any(isinstance(c, str) for c in values)

    stack = [estimator]
    while stack:
        step = stack.pop()
        if isinstance(step, ColumnTransformer):
            if any(named(cols) for _, _, cols in step.transformers_):
                return True
            stack += [t for _, t, _ in step.transformers_ if not isinstance(t, str)]
        stack += [s for _, s in getattr(step, "steps", [])]
    return False


def _one_input(model: onnx.ModelProto, names: list[str], elem_type: int) -> onnx.ModelProto:
    """One [N, n] input split into the named [N, 1] inputs a by-name ColumnTransformer was converted with."""
    from onnx import helper

    n = len(names)
    parts = [f"mlserve_column_{i}" for i in range(n)]
    split = helper.make_graph(
        [helper.make_node("Split", ["input", "mlserve_split_sizes"], parts, axis=1, name="mlserve_columns")],
        "columns",
        [helper.make_tensor_value_info("input", elem_type, [None, n])],
        [helper.make_tensor_value_info(part, elem_type, [None, 1]) for part in parts],
        [onnx.numpy_helper.from_array(np.ones(n, dtype=np.int64), "mlserve_split_sizes")],
    )
    opsets = {o.domain or "": o.version for o in model.opset_import}
    first = helper.make_model(split, opset_imports=[helper.make_opsetid("", opsets.get("", 17))])
    first.ir_version = model.ir_version
    inputs = graph_inputs(model)  # in the order given, with names skl2onnx made safe ("a (cm)" -> "a__cm_")
    if len(inputs) != n:
        raise ImportProblem(f"the converted graph has {len(inputs)} inputs for {n} columns", "convert")
    io_map = [(part, graph_input.name) for part, graph_input in zip(parts, inputs, strict=True)]
    return onnx.compose.merge_models(first, model, io_map=io_map)


def finish(imported: Imported, name: str, version: str, extra: dict[str, str]) -> onnx.ModelProto:
    """The metadata the server reads (name, version, feature_names, class_labels) and `extra`."""
    metadata = {"name": name, "version": version, **extra}
    if imported.feature_names:
        metadata["feature_names"] = json.dumps(imported.feature_names)
    if imported.class_labels is not None:
        metadata["class_labels"] = json.dumps(imported.class_labels)
    model = imported.model
    kept = {p.key: p.value for p in model.metadata_props if p.key not in metadata}
    onnx.helper.set_model_props(model, {**kept, **metadata})
    onnx.checker.check_model(model)
    return model


__all__ = ["ImportProblem", "Imported", "convert", "finish", "from_onnx", "merge_scaler"]
