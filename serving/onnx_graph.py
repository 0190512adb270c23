"""What onnxruntime does not show about a model, read from the ONNX file itself: class labels and the
categories an encoder refuses to go beyond.

The serving image has no `onnx` package (protobuf classes for the ONNX schema), so this reads the few
fields it needs straight from protobuf's wire format. Nodes it does not need (a tree ensemble's
megabytes of attributes) are skipped by their length, never decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# Field numbers in onnx.proto (stable since ONNX 1.0).
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INPUT = 1, 11
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 2, 4, 5, 7
# Operators that pass one column on unchanged in value (skl2onnx puts a Gather or a Cast between a
# typed column's input and its encoder): an encoder behind them still reads that input's values.
_PASS_THROUGH = frozenset(("Identity", "Cast", "Gather", "Reshape", "Squeeze", "Unsqueeze", "Flatten"))
_ATTR_NAME, _ATTR_I, _ATTR_INTS, _ATTR_STRINGS = 1, 3, 8, 9
_VALUE_INFO_NAME = 1
_CLASSIFIERS_LABELS = ("classlabels_strings", "classlabels_int64s")


@dataclass
class GraphFacts:
    class_labels: list[str | int] | None = None  # the classifier operator's, in probability-column order
    # Graph input -> the only values a OneHotEncoder on it accepts (handle_unknown='error': zeros=0)
    categories: dict[str, tuple[str | int, ...]] = field(default_factory=dict)


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, varint value or length-delimited bytes); fixed-width fields skipped."""
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            length, at = _varint(data, at)
            yield number, data[at : at + length]
            at += length
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _attribute(data: memoryview) -> tuple[str, int | None, list[int], list[str]]:
    name, number, ints, strings = "", None, [], []
    for key, value in _fields(data):
        if key == _ATTR_NAME and isinstance(value, memoryview):
            name = bytes(value).decode()
        elif key == _ATTR_I and isinstance(value, int):
            number = _int64(value)
        elif key == _ATTR_INTS:
            if isinstance(value, int):
                ints.append(_int64(value))
            else:  # packed
                at = 0
                while at < len(value):
                    item, at = _varint(value, at)
                    ints.append(_int64(item))
        elif key == _ATTR_STRINGS and isinstance(value, memoryview):
            strings.append(bytes(value).decode("utf-8", "replace"))
    return name, number, ints, strings


@dataclass
class _Node:
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attributes: list[memoryview]


def _node(data: memoryview) -> _Node:
    node = _Node("", "", [], [], [])
    for key, value in _fields(data):
        if not isinstance(value, memoryview):
            continue
        if key == _NODE_OP_TYPE:
            node.op_type = bytes(value).decode()
        elif key == _NODE_DOMAIN:
            node.domain = bytes(value).decode()
        elif key == _NODE_INPUT:
            node.inputs.append(bytes(value).decode())
        elif key == _NODE_OUTPUT:
            node.outputs.append(bytes(value).decode())
        elif key == _NODE_ATTRIBUTE:
            node.attributes.append(value)
    return node


def _source_input(name: str, producers: dict[str, _Node], graph_inputs: set[str]) -> str | None:
    """The graph input whose values reach `name` through pass-through operators only, if any."""
    for _ in range(len(producers) + 1):
        if name in graph_inputs:
            return name
        node = producers.get(name)
        if node is None or node.domain not in ("", "ai.onnx") or node.op_type not in _PASS_THROUGH or not node.inputs:
            return None
        name = node.inputs[0]
    return None


def _facts_of(node: _Node, facts: GraphFacts, producers: dict[str, _Node], graph_inputs: set[str]) -> None:
    if node.domain != "ai.onnx.ml" or not (node.op_type.endswith("Classifier") or node.op_type == "OneHotEncoder"):
        return
    parsed = {name: (number, ints, strings) for name, number, ints, strings in map(_attribute, node.attributes)}
    if node.op_type.endswith("Classifier"):
        strings = parsed.get("classlabels_strings", (None, [], []))[2]
        ints = parsed.get("classlabels_int64s", (None, [], []))[1]
        labels: list[str | int] | None = list(strings) if strings else list(ints) if ints else None
        facts.class_labels = labels if facts.class_labels is None else facts.class_labels
        return
    zeros = parsed.get("zeros", (1, [], []))[0]  # the operator's default: unknown -> all zeros
    source = _source_input(node.inputs[0], producers, graph_inputs) if node.inputs else None
    if zeros == 0 and source is not None:
        cats_strings = parsed.get("cats_strings", (None, [], []))[2]
        cats: tuple[str | int, ...] = tuple(cats_strings) or tuple(parsed.get("cats_int64s", (None, [], []))[1])
        facts.categories[source] = cats


def read_graph_facts(model: bytes) -> GraphFacts:
    """Class labels and refused categories of a serialized ONNX model (empty facts if it has none, or if
    the bytes are not what onnxruntime already accepted: these facts only improve answers and errors)."""
    try:
        return _read(model)
    except (ValueError, IndexError, UnicodeDecodeError):
        return GraphFacts()


def _read(model: bytes) -> GraphFacts:
    facts = GraphFacts()
    data = memoryview(model)
    graph = next((v for k, v in _fields(data) if k == _MODEL_GRAPH and isinstance(v, memoryview)), None)
    if graph is None:
        return facts
    nodes: list[memoryview] = []
    inputs: set[str] = set()
    for key, value in _fields(graph):
        if key == _GRAPH_NODE and isinstance(value, memoryview):
            nodes.append(value)
        elif key == _GRAPH_INPUT and isinstance(value, memoryview):
            inputs.update(
                bytes(v).decode() for k, v in _fields(value) if k == _VALUE_INFO_NAME and isinstance(v, memoryview)
            )
    parsed = [_node(node) for node in nodes]
    producers = {output: node for node in parsed for output in node.outputs}
    for node in parsed:
        _facts_of(node, facts, producers, inputs)
    return facts
