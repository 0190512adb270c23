"""Step 2, convert: a loaded model as the one-graph ONNX model the server runs (one 2-D float input).

- scikit-learn estimators and pipelines through skl2onnx (no ZipMap: plain tensors), tree models with a
  double input and double thresholds (importer/trees.py), a `ColumnTransformer` that picks columns by
  name through one input split into named columns;
- XGBoost and LightGBM (scikit-learn API or native boosters) through onnxmltools;
- ONNX files as they are, and the Azure ML SDK v1 seeds' scaler + ONNX pair merged into one graph.

Training libraries live here, in the development environment, never in the serving image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from importer.problems import ImportProblem
from importer.sources import Loaded, from_mlflow, load_pickle
from importer.trees import sklearn_trees, with_double_thresholds

OPSETS = {"": 17, "ai.onnx.ml": 3}
BOOSTER_OPSET = 15  # the highest onnxmltools 1.16 converts XGBoost and LightGBM to


@dataclass
class Imported:
    model: onnx.ModelProto
    n_features: int
    feature_names: list[str] | None
    class_labels: list[Any] | None
    reference: Any | None  # the original (an estimator, a booster, or the scaler + ONNX pair) to compare with
    library: str = "onnx"
    notes: list[str] = field(default_factory=list)

    @property
    def double(self) -> bool:
        """Whether the graph takes float64 (tree thresholds kept in double precision)."""
        (graph_input,) = _inputs(self.model)
        return bool(graph_input.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE)


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


def _n_features(estimator: Any, features: list[str] | None) -> int:
    for attribute in ("n_features_in_", "n_features_"):
        if hasattr(estimator, attribute):
            return int(getattr(estimator, attribute))
    for method in ("num_features", "num_feature"):  # native boosters: xgboost.Booster, lightgbm.Booster
        if hasattr(estimator, method):
            return int(getattr(estimator, method)())
    if features:
        return len(features)
    raise ImportProblem(
        f"a {type(estimator).__name__} that does not say how many features it takes: is it fitted? "
        "Fit it (or save it after fitting) and import it again"
    )


def _feature_names(estimator: Any, features: list[str] | None) -> list[str] | None:
    if features:
        return features
    names = getattr(estimator, "feature_names_in_", None)
    if names is None and hasattr(estimator, "feature_name"):  # lightgbm.Booster
        names = estimator.feature_name()
    if names is None:
        names = getattr(estimator, "feature_names", None)  # xgboost.Booster
    return [str(n) for n in names] if names is not None else None


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
    n = _n_features(estimator, features)
    names = _feature_names(estimator, features)
    if names is not None and len(names) != n:
        raise ImportProblem(f"{len(names)} feature names for a model that takes {n} features")
    classifier = hasattr(estimator, "classes_")
    by_name = _columns_by_name(estimator)
    if by_name and names is None:
        raise ImportProblem("a ColumnTransformer picks columns by name, but the model has no feature names")
    columns = names if by_name else None
    notes: list[str] = []
    model = None
    if sklearn_trees(estimator):  # trees compare float32(x) with double thresholds: a double graph keeps them
        try:
            model = _double_graph(estimator, n, columns, classifier)
        except Exception:  # a step without a double converter or kernel: float32 thresholds, said
            notes.append("a step has no float64 converter: tree thresholds are float32, rows near one may differ")
    if model is None:
        model = _skl2onnx(estimator, n, columns, False, classifier)
        if by_name:
            model = _one_input(model, names or [], onnx.TensorProto.FLOAT)
    labels = [_plain(c) for c in estimator.classes_] if classifier else None
    return Imported(model, n, names, labels, estimator, "sklearn", notes)


def _double_graph(estimator: Any, n: int, columns: list[str] | None, classifier: bool) -> onnx.ModelProto:
    """A float64 graph with scikit-learn's double thresholds, refused (raises) unless onnxruntime runs it."""
    model = _skl2onnx(estimator, n, columns, True, classifier)
    if with_double_thresholds(model, estimator) < len(sklearn_trees(estimator)):
        raise ImportProblem("some trees did not match the converted graph", "convert")
    if columns:
        model = _one_input(model, columns, onnx.TensorProto.DOUBLE)
    import onnxruntime as ort

    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return model


def _skl2onnx(estimator: Any, n: int, columns: list[str] | None, double: bool, classifier: bool) -> onnx.ModelProto:
    """skl2onnx's graph: one [N, n] input, or one [N, 1] input per named column."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor = DoubleTensorType if double else FloatTensorType
    initial = [(c, tensor([None, 1])) for c in columns] if columns else [("input", tensor([None, n]))]
    try:
        return to_onnx(
            estimator, initial_types=initial, options={"zipmap": False} if classifier else None, target_opset=OPSETS
        )
    except Exception as error:  # skl2onnx: MissingShapeCalculator, RuntimeError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ImportProblem(
            f"skl2onnx cannot convert the {_describe(estimator)} ({type(error).__name__}: {first:.300}); "
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
    inputs = _inputs(model)  # in the order given, with names skl2onnx made safe ("a (cm)" -> "a__cm_")
    if len(inputs) != n:
        raise ImportProblem(f"the converted graph has {len(inputs)} inputs for {n} columns", "convert")
    io_map = [(part, graph_input.name) for part, graph_input in zip(parts, inputs, strict=True)]
    return onnx.compose.merge_models(first, model, io_map=io_map)


def from_booster(model: Any, library: str, features: list[str] | None = None) -> Imported:
    """XGBoost or LightGBM, as the scikit-learn API or a native booster, through onnxmltools."""
    try:
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise ImportProblem("onnxmltools is not installed: pip install -r requirements-dev.txt") from None
    n = _n_features(model, features)
    names = _feature_names(model, features)
    initial = [("input", FloatTensorType([None, n]))]
    try:
        if library == "xgboost":
            onx = convert_xgboost(_xgboost_for_conversion(model), initial_types=initial, target_opset=BOOSTER_OPSET)
        else:
            onx = convert_lightgbm(model, initial_types=initial, zipmap=False, target_opset=BOOSTER_OPSET)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ImportProblem(
            f"onnxmltools cannot convert the {type(model).__name__} ({type(error).__name__}: {first:.300}); "
            "export it to ONNX yourself and import the .onnx file",
            "convert",
        ) from None
    onx = _rows_dynamic(_without_zipmap(onx))
    classes = getattr(model, "classes_", None)
    labels = [_plain(c) for c in classes] if classes is not None else _onnx_class_labels(onx)
    return Imported(onx, n, names, labels, model, library)


def _xgboost_for_conversion(model: Any) -> Any:
    """onnxmltools reads feature indices from names f0, f1, ...: a booster with its own names gets those."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    if booster.feature_names and booster.feature_names != [f"f{i}" for i in range(len(booster.feature_names))]:
        copy = booster.copy()
        copy.feature_names = None
        if hasattr(model, "get_booster"):
            import copy as copying

            clone = copying.copy(model)
            clone._Booster = copy
            return clone
        return copy
    return model


def _rows_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """Outputs declared with one row (onnxmltools' LightGBM labels) get a row count left open, as the input's."""
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "N"
    return model


def _without_zipmap(model: onnx.ModelProto) -> onnx.ModelProto:
    """Probabilities as a tensor: a ZipMap at the end is dropped, its input becomes the output."""
    zipmaps = [n for n in model.graph.node if n.op_type == "ZipMap"]
    if not zipmaps:
        return model
    (zipmap,) = zipmaps
    tensor = zipmap.input[0]
    outputs = [o for o in model.graph.output if o.name != zipmap.output[0]]
    info = onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, [None, None])
    model.graph.node.remove(zipmap)
    del model.graph.output[:]
    model.graph.output.extend([*outputs, info])
    return model


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


def _metadata_list(model: onnx.ModelProto, key: str) -> list[Any] | None:
    raw = {p.key: p.value for p in model.metadata_props}.get(key)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _onnx_class_labels(model: onnx.ModelProto) -> list[Any] | None:
    """The labels a classifier was exported with (ai.onnx.ml *Classifier nodes carry them)."""
    known = _metadata_list(model, "class_labels")
    if known is not None:
        return known
    for node in model.graph.node:
        if node.domain == "ai.onnx.ml" and node.op_type.endswith("Classifier"):
            for attribute in node.attribute:
                if attribute.name == "classlabels_strings" and attribute.strings:
                    return [v.decode() for v in attribute.strings]
                if attribute.name in ("classlabels_ints", "classlabels_int64s") and attribute.ints:
                    return list(attribute.ints)
    return None


def _inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _single_input(model: onnx.ModelProto, path: Path) -> list[onnx.ValueInfoProto]:
    inputs = _inputs(model)
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
        raise ImportProblem(
            f"cannot merge the scaler into {model_path} ({type(error).__name__}: {error})", "convert"
        ) from None
    onnx.checker.check_model(merged)
    names = downstream.feature_names or _feature_names(scaler, features)
    return Imported(merged, downstream.n_features, names, downstream.class_labels, (scaler, model_path), "sklearn")


def _with_opsets(scaler: Any, n: int, domains: dict[str, int]) -> onnx.ModelProto:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    target = {"": domains.get("", 17)}
    if "ai.onnx.ml" in domains:
        target["ai.onnx.ml"] = domains["ai.onnx.ml"]
    return to_onnx(scaler, initial_types=[("input", FloatTensorType([None, n]))], target_opset=target)


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


def convert_mlflow_sklearn(directory: Path, output: Path) -> Path:
    """For stacks.model_source: an MLflow sklearn, xgboost or lightgbm model as model.onnx, its sample row
    and baseline from the model's input example when it has one."""
    from importer.baseline import baseline
    from importer.rows import from_example

    loaded = from_mlflow(directory)
    imported = convert(loaded, None)
    extra = {}
    if loaded.example is not None:
        rows = from_example(loaded.example, imported.n_features, imported.feature_names).frame
        extra = {"sample_input": json.dumps(rows.iloc[0].tolist()), "baseline": baseline(rows)}
    onnx.save_model(finish(imported, directory.name, "", extra), output)
    return output


__all__ = ["ImportProblem", "Imported", "convert", "finish", "from_onnx", "load_pickle", "merge_scaler"]
