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
