"""The Open Inference Protocol's binary tensor data extension (as Triton and KServe define it).

A request may carry tensors as raw bytes after its JSON: `Inference-Header-Content-Length` says
where the JSON ends, and each binary input says its size in `parameters.binary_data_size`, the
bytes following in input order (little-endian, row-major; BYTES as 4-byte length + bytes per
element). Outputs come back the same way when the request asks (`parameters.binary_data_output`,
or `binary_data` on one requested output): `tritonclient`'s default for both.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from serving.errors import InvalidInput

EXTENSION = "binary_tensor_data"
HEADER = b"inference-header-content-length"
OCTET_STREAM = b"application/octet-stream"

DTYPES = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def json_end(body: bytes, declared: bytes | None) -> int | None:
    """Where the JSON ends: the header's length, the whole body without one, None for a length that cannot be."""
    if declared is None:
        return len(body)
    if not declared.isdigit() or not 0 < int(declared) <= len(body):
        return None
    return int(declared)


def split(body: bytes, declared: bytes | None) -> tuple[bytes, memoryview | None]:
    """The JSON part and the binary part of a request; no binary part without the header."""
    if declared is None:
        return body, None
    end = json_end(body, declared)
    if end is None:
        raise InvalidInput(
            f"Inference-Header-Content-Length: {declared.decode('latin-1')!r:.30} must be the JSON header's "
            f"length in bytes, at most the body's {len(body)}"
        )
    return body[:end], memoryview(body)[end:]


def take(
    tensor: dict[str, Any], shape: list[int], datatype: str, binary: memoryview | None, offset: int, where: str
) -> tuple[np.ndarray, int]:
    """An input's values from the binary part at `offset`; -> (values, next offset)."""
    size = tensor["parameters"]["binary_data_size"]
    if binary is None:
        raise InvalidInput(f"{where}: binary_data_size needs the Inference-Header-Content-Length header")
    if type(size) is not int or size < 0:
        raise InvalidInput(f"{where}.parameters.binary_data_size: expected a byte count, got {size!r:.30}")
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(f"{where}: binary data of datatype {datatype!r:.20} is not a tensor this model takes")
    expected = int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        raise InvalidInput(
            f"{where}.parameters.binary_data_size: {size} bytes, but shape {shape} of {datatype} is {expected} bytes"
        )
    if offset + size > len(binary):
        raise InvalidInput(f"{where}: binary_data_size {size} runs past the end of the body")
    values = np.frombuffer(binary[offset : offset + size], dtype=dtype)
    return values, offset + size


def take_strings(
    tensor: dict[str, Any], count: int, binary: memoryview | None, offset: int, where: str
) -> tuple[list[str], int]:
    """A BYTES input's `count` strings from the binary part at `offset` (each a 4-byte little-endian
    length, then UTF-8 bytes); -> (strings, next offset)."""
    size = tensor["parameters"]["binary_data_size"]
    if binary is None:
        raise InvalidInput(f"{where}: binary_data_size needs the Inference-Header-Content-Length header")
    if type(size) is not int or size < 0 or offset + size > len(binary):
        raise InvalidInput(f"{where}.parameters.binary_data_size: {size!r:.30} is not a byte count within the body")
    data = binary[offset : offset + size]
    strings: list[str] = []
    at = 0
    for _ in range(count):
        if at + 4 > size:
            break
        (length,) = struct.unpack_from("<I", data, at)
        if at + 4 + length > size:
            break
        try:
            strings.append(bytes(data[at + 4 : at + 4 + length]).decode())
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: element {len(strings)} is not UTF-8 text") from None
        at += 4 + length
    if len(strings) != count or at != size:
        raise InvalidInput(
            f"{where}.parameters.binary_data_size: {size} bytes do not hold exactly {count} length-prefixed strings"
        )
    return strings, offset + size


def check_all_used(binary: memoryview | None, used: int) -> None:
    if binary is not None and used != len(binary):
        raise InvalidInput(
            f"body has {len(binary)} bytes after the JSON header, but the inputs' binary_data_size add up to {used}"
        )


def wanted(payload: dict[str, Any], requested: list[dict[str, Any]] | None, names: list[str]) -> list[bool]:
    """Which outputs go back as binary: an output's own `binary_data`, else the request's `binary_data_output`."""
    parameters = payload.get("parameters")
    default = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    own: dict[str, Any] = {}
    for output in requested or ():
        flags = output.get("parameters")
        if isinstance(flags, dict) and "binary_data" in flags:
            own[output["name"]] = flags["binary_data"] is True
    return [own.get(name, default) for name in names]


def encode(array: np.ndarray) -> bytes:
    """A tensor's bytes as the extension writes them: little-endian row-major; BYTES length-prefixed."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts = []
    for item in array.reshape(-1).tolist():
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)
