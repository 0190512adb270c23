"""ONNX files as they are, and the Azure ML SDK v1 scaler + ONNX pair merged into one graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from importer.imported import Imported, feature_names, graph_inputs, n_features
from importer.problems import ImportProblem


def from_onnx(path: Path, features: list[str] | None = None) -> Imported:
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:
        raise ImportProblem(f"{path}: not a valid ONNX model ({type(error).__name__}: {error})") from None
    (graph_input,) = _single_input(model, path)
    n = _input_width(graph_input, features, path)
    return Imported(model, n, features or metadata_list(model, "feature_names"), onnx_class_labels(model), None)


def metadata_list(model: onnx.ModelProto, key: str) -> list[Any] | None:
    raw = {p.key: p.value for p in model.metadata_props}.get(key)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def onnx_class_labels(model: onnx.ModelProto) -> list[Any] | None:
    """The labels a classifier was exported with (ai.onnx.ml *Classifier nodes carry them)."""
    known = metadata_list(model, "class_labels")
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


def _single_input(model: onnx.ModelProto, path: Path) -> list[onnx.ValueInfoProto]:
    inputs = graph_inputs(model)
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
    """The Azure ML SDK v1 layout: `scaler.transform` then the ONNX model, as one graph."""
    if not hasattr(scaler, "transform"):
        raise ImportProblem(f"a {type(scaler).__name__} is not a fitted scaler (it has no transform)")
    n = n_features(scaler, features)
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
    names = downstream.feature_names or feature_names(scaler, features)
    return Imported(merged, downstream.n_features, names, downstream.class_labels, (scaler, model_path), "sklearn")


def _with_opsets(scaler: Any, n: int, domains: dict[str, int]) -> onnx.ModelProto:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    target = {"": domains.get("", 17)}
    if "ai.onnx.ml" in domains:
        target["ai.onnx.ml"] = domains["ai.onnx.ml"]
    graph: onnx.ModelProto = to_onnx(scaler, initial_types=[("input", FloatTensorType([None, n]))], target_opset=target)
    return graph
