"""Double-precision thresholds for scikit-learn's trees in an ONNX graph.

scikit-learn compares float32(x) with float64 thresholds; skl2onnx 1.20 writes each threshold as a float32
(`nodes_values`) even for a double input, so a row close to a threshold can take the other branch
(the diabetes StandardScaler + RandomForest: 6 of 442 rows off by up to 5.6). ai.onnx.ml opset 3 has
`nodes_values_as_tensor` (double), which onnxruntime runs for a double input with a float output
(its <double, double, float> kernel): this puts the double thresholds back and casts the float output
to the double the rest of the graph expects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

ENSEMBLES = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")


def sklearn_trees(estimator: Any) -> list[list[Any]]:
    """The `tree_` lists of every tree-based estimator in a pipeline, in conversion order (one per model)."""
    found: list[list[Any]] = []
    for step in _walk(estimator):
        members = getattr(step, "estimators_", None)
        # GradientBoosting keeps an array (iterations x classes), in row-major order as converted
        members = list(members.ravel()) if isinstance(members, np.ndarray) else list(members or [])
        if hasattr(step, "tree_"):
            found.append([step.tree_])
        elif members and all(hasattr(e, "tree_") for e in members):
            found.append([e.tree_ for e in members])
        elif members:  # Voting, Stacking, Bagging of other models: their trees, each model in turn
            found += [trees for member in members for trees in sklearn_trees(member)]
    return found


def _walk(estimator: Any) -> list[Any]:
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        return [s for _, step in steps for s in _walk(step)]
    transformers = getattr(estimator, "transformers_", None)
    if transformers is not None:
        return [s for _, step, _ in transformers if not isinstance(step, str) for s in _walk(step)]
    return [estimator]


def _double_thresholds(node: onnx.NodeProto, trees: list[Any]) -> np.ndarray | None:
    """The float64 thresholds of `node`'s branches from `trees`, or None when they are not its trees."""
    from skl2onnx.common.tree_ensemble import sklearn_threshold

    attributes = {a.name: a for a in node.attribute}
    if "nodes_values" not in attributes:
        return None
    stored = np.asarray(attributes["nodes_values"].floats, dtype=np.float32)
    modes = [m.decode() for m in attributes["nodes_modes"].strings]
    values = stored.astype(np.float64)
    for i, (tree_id, node_id) in enumerate(zip(attributes["nodes_treeids"].ints, attributes["nodes_nodeids"].ints,
                                               strict=True)):  # fmt: skip
        if modes[i] == "LEAF":
            continue
        if modes[i] != "BRANCH_LEQ" or tree_id >= len(trees) or node_id >= trees[tree_id].node_count:
            return None
        # The threshold w with float32(x) <= t exactly when x <= w, as skl2onnx computes it for doubles.
        w = float(sklearn_threshold(trees[tree_id].threshold[node_id], np.float64, "BRANCH_LEQ"))
        if np.float32(w) != stored[i]:
            return None  # another model's trees: leave this node as converted
        values[i] = w
    return values


def with_double_thresholds(model: onnx.ModelProto, estimator: Any) -> int:
    """Rewrite the tree ensembles of a double-input graph with double thresholds; returns how many."""
    remaining = sklearn_trees(estimator)
    declared = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.output, *model.graph.value_info]}
    rewritten: list[onnx.NodeProto] = []
    count = 0
    for node in model.graph.node:
        rewritten.append(node)
        if node.domain != "ai.onnx.ml" or node.op_type not in ENSEMBLES:
            continue
        for index, trees in enumerate(remaining):
            values = _double_thresholds(node, trees)
            if values is not None:
                del remaining[index]
                break
        else:
            continue
        kept = [a for a in node.attribute if a.name != "nodes_values"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("nodes_values_as_tensor", numpy_helper.from_array(values))])
        # onnxruntime's double kernel answers float scores: cast them back where the graph expects doubles.
        scores = 0 if node.op_type == "TreeEnsembleRegressor" else 1
        name = node.output[scores]
        if declared.get(name) == onnx.TensorProto.FLOAT:
            count += 1
            continue
        node.output[scores] = f"{name}_float"
        rewritten.append(helper.make_node("Cast", [f"{name}_float"], [name], to=onnx.TensorProto.DOUBLE,
                                          name=f"{node.name}_to_double"))  # fmt: skip
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(rewritten)
    if count:  # the attribute is ai.onnx.ml opset 3's; skl2onnx declares the lowest opset its nodes need
        for opset in model.opset_import:
            if opset.domain == "ai.onnx.ml":
                opset.version = max(opset.version, 3)
    return count
