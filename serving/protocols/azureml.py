"""Azure ML style scoring: `POST /score` with `{"data": [[...]], "method": "predict|predict_proba"}`."""

from __future__ import annotations

import numpy as np

from serving.errors import InvalidInput
from serving.protocols.jsonbody import json_object, method_from
from serving.protocols.tabular import json_rows
from serving.runtime import ModelRuntime


def parse_score(body: bytes, runtime: ModelRuntime, max_rows: int) -> tuple[np.ndarray, str]:
    payload = json_object(body)
    if "data" not in payload:
        raise InvalidInput("request body must have a 'data' field with the rows to score")
    method = method_from(payload)
    rows = json_rows(payload["data"], runtime.feature_names, runtime.n_features, max_rows, "data")
    return rows, method
