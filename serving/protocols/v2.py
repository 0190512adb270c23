"""Open Inference Protocol (KServe v2): metadata and `infer` bodies."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from serving import __version__
from serving.errors import InvalidInput
from serving.protocols import columns, v2_binary
from serving.protocols.jsonbody import dumps, json_object, jsonable
from serving.protocols.tabular import check_row_count, contains_bool, ensure_finite
from serving.runtime import ModelRuntime, Rows, TensorSpec

NUMERIC_DATATYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def server_metadata() -> dict[str, Any]:
    return {"name": "mlserve", "version": __version__, "extensions": [v2_binary.EXTENSION]}


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def model_metadata(runtime: ModelRuntime) -> dict[str, Any]:
    if runtime.columns is not None:  # one tensor per column, by the name clients send
        inputs = [
            {"name": c.name, "datatype": c.datatype, "shape": [-1, 1] if c.rank == 2 else [-1]} for c in runtime.columns
        ]
    else:
        inputs = [{**_tensor_metadata(runtime.input), "shape": [-1, runtime.n_features]}]
    return {
        "name": runtime.name,
        "versions": [runtime.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": [_tensor_metadata(o) for o in runtime.outputs],
    }


_INTEGERS = {
    name: np.iinfo(kind)
    for name, kind in (
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
    )
}
_FP16_MAX = float(np.finfo(np.float16).max)


def check_datatype(values: np.ndarray, datatype: str, where: str) -> None:
    """The values must be what the tensor declares: integers in range for INTn/UINTn, FP16 in FP16's range."""
    if datatype == "FP16":
        beyond = np.flatnonzero(np.abs(values) > _FP16_MAX)
        if beyond.size:
            value = values.flat[beyond[0]].item()
            raise InvalidInput(f"{where}: {value!r} is beyond FP16's range (±{_FP16_MAX:g}); declare FP32")
        return
    limits = _INTEGERS[datatype]
    if values.dtype.kind == "f":
        fractional = np.flatnonzero(values != np.trunc(values))
        if fractional.size:
            value = values.flat[fractional[0]].item()
            raise InvalidInput(f"{where}: {value!r} is not an integer, as {datatype} requires")
    outside = np.flatnonzero((values < limits.min) | (values > limits.max))
    if outside.size:
        value = values.flat[outside[0]].item()
        raise InvalidInput(f"{where}: {value!r} is outside {datatype}'s range ({limits.min} to {limits.max})")


class InferRequest(NamedTuple):
    rows: Rows
    names: list[str]  # outputs to return
    request_id: Any
    binary: list[bool] | None  # per output, whether it goes back as binary data; None: all JSON


def parse_infer(body: bytes, runtime: ModelRuntime, max_rows: int, header_length: bytes | None = None) -> InferRequest:
    """A JSON infer request, or one with binary tensor data after `header_length` bytes of JSON."""
    json_part, binary = v2_binary.split(body, header_length)
    payload = json_object(json_part)
    rows = (
        _column_tensors(payload, binary, runtime, max_rows)
        if runtime.columns
        else _matrix(payload, binary, runtime, max_rows)
    )
    names, binary_outputs = _outputs(payload, runtime)
    return InferRequest(rows, names, payload.get("id"), binary_outputs)


def _matrix(payload: dict[str, Any], binary: memoryview | None, runtime: ModelRuntime, max_rows: int) -> np.ndarray:
    """The one [rows, features] tensor of a single-matrix model."""
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise InvalidInput(f"inputs: expected a list with exactly one tensor named '{runtime.input.name}'")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InvalidInput("inputs[0]: expected an object with name, shape, datatype and data")
    name = tensor.get("name")
    if name != runtime.input.name:
        raise InvalidInput(f"inputs[0].name: expected '{runtime.input.name}', got {name!r:.40}")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in NUMERIC_DATATYPES:
        expected = runtime.input.datatype
        raise InvalidInput(
            f"inputs[0].datatype: this model takes {expected} (or another numeric type), got {datatype!r:.20}"
        )
    shape = tensor.get("shape")
    width = runtime.n_features
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[1] != width
        or shape[0] < 0
    ):
        raise InvalidInput(f"inputs[0].shape: expected [rows, {width}], got {shape!r:.40}")
    check_row_count(shape[0], max_rows, "inputs[0]")
    parameters = tensor.get("parameters")
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        values, used = v2_binary.take(tensor, shape, datatype, binary, 0, f"inputs[0] ({name})")
        v2_binary.check_all_used(binary, used)
    else:
        v2_binary.check_all_used(binary, 0)
        values = _json_values(tensor.get("data"), shape, datatype, name)
    return ensure_finite(values.reshape(shape).astype(runtime.input_dtype), "inputs[0].data")


def _outputs(payload: dict[str, Any], runtime: ModelRuntime) -> tuple[list[str], list[bool] | None]:
    known = [o.name for o in runtime.outputs]
    requested = payload.get("outputs")
    if requested is None:
        names = known
    else:
        if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
            raise InvalidInput('outputs: expected a list of {"name": ...} objects')
        names = [o.get("name") for o in requested]
        if not names:
            raise InvalidInput(f"outputs: name at least one of {', '.join(known)}, or leave outputs out for all")
        unknown = [str(n) for n in names if not isinstance(n, str) or n not in known]
        if unknown:
            raise InvalidInput(f"outputs: unknown {', '.join(unknown)}; this model has {', '.join(known)}")
        if len(set(names)) != len(names):
            raise InvalidInput("outputs: each output may be asked for once")
    binary_outputs = None
    if "parameters" in payload or (requested and any("parameters" in o for o in requested)):
        flags = v2_binary.wanted(payload, requested, names)
        binary_outputs = flags if any(flags) else None
    return names, binary_outputs


# The datatypes a client may send for each column kind (a number column takes integers too).
_COLUMN_DATATYPES = {
    "number": NUMERIC_DATATYPES,
    "integer": {name for name in NUMERIC_DATATYPES if "INT" in name},
    "string": {"BYTES"},
    "boolean": {"BOOL"},
}


def _column_tensors(payload: dict[str, Any], binary: memoryview | None, runtime: ModelRuntime, max_rows: int) -> Rows:
    """One tensor per column, by name, in any order: [rows] or [rows, 1]."""
    model_columns = runtime.columns or ()
    names = [c.name for c in model_columns]
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
        raise InvalidInput(f"inputs: expected a list of tensors, one per column ({', '.join(names)})")
    given = [t.get("name") for t in inputs]
    if sorted(map(str, given)) != sorted(names):
        missing = [n for n in names if n not in given]
        unknown = [str(g) for g in given if g not in names]
        twice = sorted({str(g) for g in given if given.count(g) > 1})
        raise InvalidInput(
            f"inputs: one tensor per column, by name: missing {', '.join(missing) or '-'}; "
            f"unknown {', '.join(unknown) or '-'}; more than once {', '.join(twice) or '-'}"
        )
    by_name = {t["name"]: (i, t) for i, t in enumerate(inputs)}
    values: list[list[Any]] = []
    count: int | None = None
    used = 0
    for column in model_columns:
        position, tensor = by_name[column.name]
        where = f"inputs[{position}] ({column.name})"
        datatype = tensor.get("datatype")
        if datatype not in _COLUMN_DATATYPES[column.kind]:
            raise InvalidInput(
                f"{where}.datatype: {columns.expects(column)}: send {column.datatype}, got {datatype!r:.20}"
            )
        shape = tensor.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) not in (1, 2)
            or not all(type(d) is int and d >= 0 for d in shape)
            or shape[1:] not in ([], [1])
        ):
            raise InvalidInput(f"{where}.shape: expected [rows, 1] or [rows], got {shape!r:.40}")
        if count is None:
            count = shape[0]
            check_row_count(count, max_rows, where)
        elif shape[0] != count:
            raise InvalidInput(f"{where}.shape: {shape[0]} rows, but the first column has {count}")
        parameters = tensor.get("parameters")
        if isinstance(parameters, dict) and "binary_data_size" in parameters:
            if datatype == "BYTES":
                strings, used = v2_binary.take_strings(tensor, shape[0], binary, used, where)
                values.append(strings)
            else:
                array, used = v2_binary.take(tensor, shape, datatype, binary, used, where)
                values.append(array.tolist())
        else:
            values.append(_column_data(tensor.get("data"), shape[0], where))
    v2_binary.check_all_used(binary, used)
    return columns.from_columns(runtime, values, "inputs")


def _column_data(data: Any, count: int, where: str) -> list[Any]:
    if isinstance(data, list) and data and all(type(d) is list for d in data):
        data = [item for row in data for item in (row if isinstance(row, list) else [row])]
    if not isinstance(data, list) or len(data) != count:
        raise InvalidInput(f"{where}.data: expected a list of {count} values")
    return data


def _json_values(data: Any, shape: list[int], datatype: str, name: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidInput("inputs[0].data: expected a list of numbers (flat or nested)")
    try:
        values = np.array(data)
    except (ValueError, TypeError):
        raise InvalidInput("inputs[0].data: rows must all have the same length") from None
    if values.dtype.kind not in "iuf" or contains_bool(data):
        raise InvalidInput("inputs[0].data: expected numbers only (true/false are not numbers)")
    if values.size != shape[0] * shape[1]:
        raise InvalidInput(f"inputs[0].data: {values.size} values do not fill shape {shape}")
    if datatype != "FP32" and datatype != "FP64":
        check_datatype(values, datatype, f"inputs[0] ({name})")
    return values


_DATATYPES = {"f": {4: "FP32", 8: "FP64", 2: "FP16"}, "i": {8: "INT64", 4: "INT32"}, "b": {1: "BOOL"}}


def _datatype(array: np.ndarray) -> str:
    return _DATATYPES.get(array.dtype.kind, {}).get(array.dtype.itemsize, "BYTES")


def infer_body(
    runtime: ModelRuntime,
    names: list[str],
    results: list[np.ndarray],
    request_id: Any,
    binary: list[bool] | None = None,
) -> tuple[bytes, int | None]:
    """The response body, and where its JSON ends when binary outputs follow it (else None)."""
    outputs: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for position, (name, array) in enumerate(zip(names, results, strict=True)):
        output: dict[str, Any] = {"name": name, "datatype": _datatype(array), "shape": list(array.shape)}
        if binary is not None and binary[position]:
            data = v2_binary.encode(array)
            output["parameters"] = {"binary_data_size": len(data)}
            tail.append(data)
        else:
            output["data"] = jsonable(array.reshape(-1))
        outputs.append(output)
    body: dict[str, Any] = {"model_name": runtime.name, "model_version": runtime.version, "outputs": outputs}
    if request_id is not None:
        body["id"] = request_id
    header = dumps(body)
    if not tail:
        return header, None
    return header + b"".join(tail), len(header)
