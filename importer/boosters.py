"""XGBoost and LightGBM models (scikit-learn API or native boosters) through onnxmltools."""

from __future__ import annotations

import copy
from typing import Any

import onnx

from importer.imported import Imported, feature_names, n_features, plain
from importer.onnx_files import onnx_class_labels
from importer.problems import ImportProblem, first_line

BOOSTER_OPSET = 15  # the highest onnxmltools 1.16 converts XGBoost and LightGBM to


def from_booster(model: Any, library: str, features: list[str] | None = None) -> Imported:
    """XGBoost or LightGBM, as the scikit-learn API or a native booster, through onnxmltools."""
    try:
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise ImportProblem("onnxmltools is not installed: pip install -r requirements-dev.txt") from None
    n = n_features(model, features)
    names = feature_names(model, features)
    initial = [("input", FloatTensorType([None, n]))]
    try:
        if library == "xgboost":
            onx = convert_xgboost(_xgboost_for_conversion(model), initial_types=initial, target_opset=BOOSTER_OPSET)
        else:
            onx = convert_lightgbm(model, initial_types=initial, zipmap=False, target_opset=BOOSTER_OPSET)
    except Exception as error:
        first = first_line(error)
        raise ImportProblem(
            f"onnxmltools cannot convert the {type(model).__name__} ({type(error).__name__}: {first}); "
            "export it to ONNX yourself and import the .onnx file",
            "convert",
        ) from None
    onx = _rows_dynamic(_without_zipmap(onx))
    classes = getattr(model, "classes_", None)
    labels = [plain(c) for c in classes] if classes is not None else onnx_class_labels(onx)
    return Imported(onx, n, names, labels, model, library)


def _xgboost_for_conversion(model: Any) -> Any:
    """onnxmltools reads feature indices from names f0, f1, ...: a booster with its own names gets those."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    if booster.feature_names and booster.feature_names != [f"f{i}" for i in range(len(booster.feature_names))]:
        renamed = booster.copy()
        renamed.feature_names = None
        if hasattr(model, "get_booster"):
            clone = copy.copy(model)
            clone._Booster = renamed
            return clone
        return renamed
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


def register_with_skl2onnx() -> None:
    """Teach skl2onnx onnxmltools' converters, so an XGBoost or LightGBM model can end a pipeline."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        update_registered_converter(xgboost.XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=classifier_options)  # fmt: skip
        update_registered_converter(xgboost.XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)  # fmt: skip
    except ImportError:  # not installed: nothing of it can be in the pipeline either
        pass
    try:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm,
                                    options=classifier_options)  # fmt: skip
        update_registered_converter(lightgbm.LGBMRegressor, "LightGbmLGBMRegressor",
                                    calculate_linear_regressor_output_shapes, convert_lightgbm,
                                    options={"split": None})  # fmt: skip
    except ImportError:
        pass
