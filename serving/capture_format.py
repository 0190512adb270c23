"""Captured requests as SageMaker Data Capture writes them: one JSON line per request, one blob per batch.

The same layout on every target, so one reader (the drift report) handles SageMaker's native
capture and ours: `captureData.endpointInput.data` is the MLflow `dataframe_split` body that
`/invocations` accepts, `captureData.endpointOutput.data` the `{"predictions": ...}` answer, both as
JSON strings with `encoding: JSON`. Blob names follow SageMaker's
`<prefix>/<endpoint>/<variant>/YYYY/MM/DD/HH/<file>.jsonl`, with the model version as the variant.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from serving.runtime import ColumnRows, Rows

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def column_names(feature_names: Sequence[str] | None, width: int) -> tuple[str, ...]:
    """The model's feature names; `f0`, `f1`, ... where its metadata has none (XGBoost's convention)."""
    return tuple(feature_names) if feature_names is not None else tuple(f"f{i}" for i in range(width))


class RecordFormat:
    """Turns one captured request into a JSON line: kept columns only, model name and version."""

    def __init__(
        self,
        columns: Sequence[str],
        exclude: Sequence[str],
        model_name: str,
        model_version: str,
        inputs: Sequence[str] | None = None,
    ) -> None:
        """`inputs`: for a model with one input per column, each column's graph input (in `columns`' order)."""
        unknown = sorted(set(exclude) - set(columns))
        if unknown:
            # A misspelt exclusion would capture the very column it meant to keep out: refuse to start.
            raise ValueError(
                f"SERVING_CAPTURE_EXCLUDE names {', '.join(unknown)}, not columns of this model "
                f"({', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''}); fix the names"
            )
        self.keep = [i for i, name in enumerate(columns) if name not in set(exclude)]
        self.columns = [columns[i] for i in self.keep]
        self.all_kept = len(self.keep) == len(columns)
        self.inputs = [inputs[i] for i in self.keep] if inputs is not None else None
        self.model_name = model_name
        self.model_version = model_version
        self._second, self._stamp = -1, ""  # the last inferenceTime formatted: most records share a second

    def line(self, request_id: str, wall_time: float, rows: Rows, outputs: bytes) -> bytes:
        # orjson writes only contiguous arrays (a slice of a C array is one, its columns are not).
        second = int(wall_time)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        kept: Any
        if isinstance(rows, ColumnRows):
            # One [N, 1] array per column (text among them): rows of plain values, NaN written as null.
            kept = list(zip(*(rows.feed[name].reshape(-1).tolist() for name in self.inputs or ()), strict=True))
        elif self.all_kept and rows.flags.c_contiguous:
            kept = rows
        else:
            kept = np.ascontiguousarray(rows[:, self.keep])
        inputs = orjson.dumps({"dataframe_split": {"columns": self.columns, "data": kept}}, option=_NUMPY)
        record: dict[str, Any] = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "application/json",
                    "mode": "INPUT",
                    "data": inputs.decode(),
                    "encoding": "JSON",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": outputs.decode(),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {
                "eventId": request_id,
                "inferenceTime": self._stamp,
                "modelName": self.model_name,
                "modelVersion": self.model_version,
            },
            "eventVersion": "0",
        }
        return orjson.dumps(record) + b"\n"


def blob_name(prefix: str, endpoint: str, model_version: str, wall_time: float) -> str:
    """`<prefix>/<endpoint>/<model version>/YYYY/MM/DD/HH/<uuid>.jsonl`, the hour of `wall_time` (UTC)."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(wall_time))
    head = f"{prefix}/" if prefix else ""
    return f"{head}{endpoint}/{model_version}/{hour}/{uuid.uuid4()}.jsonl"
