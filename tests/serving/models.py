"""Small ONNX models made in the tests, to show the server is not tied to the demo model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper


def linear_regressor(path: Path, weights: list[float], bias: float, metadata: dict[str, str] | None = None) -> Path:
    """y = x @ weights + bias, input [N, len(weights)] float, output [N, 1]."""
    w = numpy_helper.from_array(np.array(weights, dtype=np.float32).reshape(-1, 1), "w")
    b = numpy_helper.from_array(np.array([bias], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, len(weights)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return path


def slow_regressor(path: Path, width: int = 7, hidden: int = 1024, layers: int = 40) -> Path:
    """A deliberately slow model: `layers` chained [hidden x hidden] MatMuls sharing one weight.

    Time grows with rows, so a test picks how slow a request is by how many rows it sends. The
    shared weight keeps the file small; many nodes let onnxruntime stop promptly when terminated.
    """
    rng = np.random.default_rng(7)
    w_in = numpy_helper.from_array((rng.normal(size=(width, hidden)) * 0.1).astype(np.float32), "w_in")
    w = numpy_helper.from_array((rng.normal(size=(hidden, hidden)) / np.sqrt(hidden)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w_in"], ["h0"])]
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("ReduceSum", [f"h{layers}", "axes"], ["y"], keepdims=1))
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[w_in, w, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"name": "slow", "version": "1"})
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path


BANK_COLUMNS = ["age", "campaign", "job", "marital", "education", "balance"]


def bank_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """A small bank-marketing-like table: numbers, an integer count and text categories."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows).astype(np.float64),
            "campaign": rng.integers(1, 6, rows).astype(np.int64),
            "job": rng.choice(["admin.", "blue-collar", "technician", "services"], rows),
            "marital": rng.choice(["married", "single", "divorced"], rows),
            "education": rng.choice(["primary", "secondary", "tertiary"], rows),
            "balance": rng.normal(1500, 900, rows).round(2),
        }
    )
    frame.loc[::17, "age"] = np.nan  # missing ages: the imputer fills them
    return frame


def bank_pipeline(frame: pd.DataFrame) -> Any:
    """Imputer + scaler for numbers, one-hot (unknown refused) and ordinal encoders for text, a classifier
    with string labels: what a team trains on bank-marketing data."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    subscribed = np.where(
        (frame["balance"] > 1500) ^ (frame["job"] == "technician") ^ (frame["marital"] == "single"), "yes", "no"
    )
    columns = ColumnTransformer(
        [
            ("numbers", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age", "balance"]),
            ("onehot", OneHotEncoder(handle_unknown="error"), ["job", "marital"]),
            ("ordinal", OrdinalEncoder(), ["education"]),
            ("count", "passthrough", ["campaign"]),
        ]
    )
    return Pipeline([("columns", columns), ("classifier", LogisticRegression(max_iter=1000))]).fit(frame, subscribed)


def bank_model(path: Path, frame: pd.DataFrame | None = None) -> tuple[Path, Any]:
    """The pipeline exported by hand with skl2onnx, one typed input per column; -> (path, the pipeline)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    frame = bank_frame() if frame is None else frame
    pipeline = bank_pipeline(frame)
    types = {"age": FloatTensorType, "campaign": Int64TensorType, "balance": FloatTensorType}
    initial = [(c, types.get(c, StringTensorType)([None, 1])) for c in BANK_COLUMNS]
    model = to_onnx(
        pipeline,
        initial_types=initial,
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    helper.set_model_props(model, {"name": "bank", "version": "1"})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return path, pipeline


def flagged_regressor(path: Path) -> Path:
    """y = x + 10 * flag: a float column and a boolean one, inputs of shape [N] (not [N, 1])."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["flag"], ["flag_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["flag_f", "ten"], ["scaled"]),
            helper.make_node("Add", ["x", "scaled"], ["y"]),
        ],
        "flagged",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, [None]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        initializer=[numpy_helper.from_array(np.array([10.0], dtype=np.float32), "ten")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"name": "flagged", "version": "1"})
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path
