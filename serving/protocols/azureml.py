"""Azure ML style scoring: `POST /score` with `{"data": [[...]], "method": "predict|predict_proba"}`."""

from __future__ import annotations

from serving.errors import InvalidInput
from serving.protocols import columns
from serving.protocols.jsonbody import json_object, method_from
from serving.protocols.tabular import json_rows
from serving.runtime import ModelRuntime, Rows


def parse_score(body: bytes, runtime: ModelRuntime, max_rows: int) -> tuple[Rows, str]:
    payload = json_object(body)
    if "data" not in payload:
        raise InvalidInput("request body must have a 'data' field with the rows to score")
    method = method_from(payload)
    if runtime.columns is not None:
        return columns.json_rows(payload["data"], runtime, max_rows, "data"), method
    rows = json_rows(payload["data"], runtime.feature_names, runtime.n_features, max_rows, "data", runtime.input_dtype)
    return rows, method
