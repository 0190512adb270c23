"""Small ONNX models made in the tests, to show the server is not tied to the demo model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
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
