"""Baseline statistics of the rows a model was imported with, for a later drift report to compare with.

Per column: count, mean, standard deviation, min, quantiles (5, 25, 50, 75, 95 %) and max for numbers;
count and the most frequent values' frequencies for text. The model's predictions on the same rows get
the same statistics: class labels as categories, regression values as numbers. Stored as JSON in the
`baseline` metadata.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_CATEGORIES = 20  # beyond these, the rest is counted as "other": metadata stays small


def column_stats(column: pd.Series) -> dict[str, Any]:
    values = column.dropna()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = values.astype(float)
        return {
            "count": int(numbers.count()),
            "mean": float(numbers.mean()),
            "std": float(numbers.std(ddof=0)),
            "min": float(numbers.min()),
            "quantiles": {f"{q:g}": float(numbers.quantile(q)) for q in QUANTILES},
            "max": float(numbers.max()),
        }
    counts = values.astype(str).value_counts()
    top = counts.head(TOP_CATEGORIES)
    frequencies = {str(k): round(float(v) / len(values), 6) for k, v in top.items()}
    if len(counts) > TOP_CATEGORIES:
        frequencies["(other)"] = round(float(counts.iloc[TOP_CATEGORIES:].sum()) / len(values), 6)
    return {"count": int(values.count()), "categories": len(counts), "frequencies": frequencies}


def prediction_stats(labels: np.ndarray) -> dict[str, Any]:
    """Labels (integers, text, booleans) as categories; regression values as numbers."""
    values = np.asarray(labels).reshape(len(labels), -1)[:, 0]
    if values.dtype.kind == "f":
        return column_stats(pd.Series(values.astype(float)))
    return column_stats(pd.Series(values).astype(str))


def baseline(frame: pd.DataFrame, predictions: np.ndarray | None = None) -> str:
    """The `baseline` metadata value: {"rows": n, "columns": {name: stats}, "predictions": stats}."""
    if frame.empty:
        return json.dumps({"rows": 0, "columns": {}})
    columns = {str(name): column_stats(frame[name]) for name in frame.columns}
    value: dict[str, Any] = {"rows": len(frame), "columns": columns}
    if predictions is not None and len(predictions):
        value["predictions"] = prediction_stats(predictions)
    return json.dumps(value, separators=(",", ":"))
