"""Shared JSON handling for request and response bodies."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from serving.errors import InvalidInput
from serving.runtime import ModelRuntime, Prediction

METHODS = ("predict", "predict_proba")


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("request body is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"request body is not valid JSON: {error}") from None


def json_object(body: bytes) -> dict[str, Any]:
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(payload).__name__}")
    return payload


def method_from(payload: dict[str, Any], default: str = "predict") -> str:
    method = payload.get("method", default)
    if method not in METHODS:
        raise InvalidInput(f"method: expected one of {', '.join(METHODS)}, got {method!r:.40}")
    return str(method)


def jsonable(array: np.ndarray) -> np.ndarray | list[Any]:
    """Numeric arrays go to orjson as they are; string labels (object arrays) as lists."""
    return array if array.dtype.kind in "biuf" else array.tolist()


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def predictions_body(runtime: ModelRuntime, prediction: Prediction, method: str) -> bytes:
    """`{"predictions": [...]}`; with predict_proba, one list of probabilities per row plus the classes."""
    if method == "predict_proba":
        return dumps({"predictions": prediction.probabilities, "classes": runtime.classes})
    return dumps({"predictions": jsonable(prediction.labels)})
