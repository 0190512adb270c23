"""What a conversion produces: the graph, its columns and classes, and the original to compare with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from importer.problems import ImportProblem


@dataclass
class Imported:
    model: onnx.ModelProto
    n_features: int
    feature_names: list[str] | None
    class_labels: list[Any] | None
    reference: Any | None  # the original (an estimator, a booster, or the scaler + ONNX pair) to compare with
    library: str = "onnx"
    notes: list[str] = field(default_factory=list)
    # Text columns (one string input each, beside numeric inputs) and the categories their encoder knows.
    text_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def double(self) -> bool:
        """Whether the graph takes float64 (tree thresholds kept in double precision)."""
        types = {i.type.tensor_type.elem_type for i in graph_inputs(self.model)}
        return onnx.TensorProto.DOUBLE in types


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def n_features(estimator: Any, features: list[str] | None) -> int:
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


def feature_names(estimator: Any, features: list[str] | None) -> list[str] | None:
    if features:
        return features
    names = getattr(estimator, "feature_names_in_", None)
    if names is None and hasattr(estimator, "feature_name"):  # lightgbm.Booster
        names = estimator.feature_name()
    if names is None:
        names = getattr(estimator, "feature_names", None)  # xgboost.Booster
    return [str(n) for n in names] if names is not None else None


def plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
