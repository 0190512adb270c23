"""Rows of numbers or named records -> a validated float matrix, with errors that point at the cell."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from serving.errors import InvalidInput


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _first_bad_cell(rows: Sequence[Any], width: int, where: str) -> InvalidInput:
    """Walk the rows slowly to say exactly what is wrong (only on the error path)."""
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            return InvalidInput(f"{where}[{r}]: expected a list of {width} numbers, got {type(row).__name__}")
        if len(row) != width:
            return InvalidInput(f"{where}[{r}]: expected {width} values, got {len(row)}")
        for c, value in enumerate(row):
            if not _is_number(value):
                return InvalidInput(f"{where}[{r}][{c}]: expected a number, got {value!r:.40}")
            if not _fits_float32(value):
                return InvalidInput(f"{where}[{r}][{c}]: {value!r:.40} is not a finite float32 number")
    return InvalidInput(f"{where}: expected a list of rows of {width} numbers")


def _fits_float32(value: float) -> bool:
    try:
        return math.isfinite(value) and abs(value) <= _FLOAT32_MAX
    except OverflowError:  # a Python int beyond any float
        return False


def check_row_count(count: int, max_rows: int, where: str) -> None:
    if count == 0:
        raise InvalidInput(f"{where}: no rows to score")
    if count > max_rows:
        raise InvalidInput(f"{where}: {count} rows exceed the limit of {max_rows} rows per request")


# Values beyond float32's range become inf when cast, and ensure_finite then reports them; the cast's
# own warning would only repeat that on stderr.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)
# The same for ensure_finite's quick sum, which meets infinities (inf - inf is NaN) and may overflow.
warnings.filterwarnings("ignore", "(overflow|invalid value) encountered in reduce", RuntimeWarning, __name__)


def contains_bool(data: Any) -> bool:
    """A JSON true/false anywhere in nested lists (v2 `data` may nest to any depth)."""
    if type(data) is bool:
        return True
    if type(data) is list:
        kinds = set(map(type, data))
        return bool in kinds or (list in kinds and any(contains_bool(item) for item in data if type(item) is list))
    return False


def ensure_finite(matrix: np.ndarray, where: str) -> np.ndarray:
    # One reduction instead of a mask and a second one: the sum is finite unless a value is not
    # (or the values are huge enough to overflow it, which the exact check below then clears).
    if not math.isfinite(np.add.reduce(matrix, axis=None)) and not np.isfinite(matrix).all():
        r, c = map(int, np.argwhere(~np.isfinite(matrix))[0])
        raise InvalidInput(f"{where}[{r}][{c}]: value is NaN, infinite or too large for float32")
    return matrix


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FEW_VALUES = 64
_NUMBERS = frozenset((int, float))


def numeric_rows(rows: list[Any], width: int, max_rows: int, where: str, dtype: Any = np.float32) -> np.ndarray:
    """A list of rows (or one flat row) of JSON numbers -> [N, width] of the model's float type.

    A double model gets float64 straight from the JSON: through float32 first, a value near a tree's
    double threshold could land on its other side.
    """
    if rows and type(rows[0]) is not list:
        rows = [rows]
    if not 0 < len(rows) <= max_rows:
        check_row_count(len(rows), max_rows, where)
    try:
        # Straight to float32 (a value beyond its range becomes inf, found below). numpy would also
        # take numeric strings and score JSON true/false as 1/0: the cells' types are checked next.
        matrix = np.array(rows, dtype=dtype)
    except (ValueError, TypeError, OverflowError):  # an int beyond any float
        raise _first_bad_cell(rows, width, where) from None
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise _first_bad_cell(rows, width, where)
    cells = chain.from_iterable(rows)
    if not set(map(type, cells)) <= _NUMBERS:  # one pass over the cells' types, in C
        raise _first_bad_cell(rows, width, where)
    # JSON numbers are finite, so only values beyond float32's range can fail. For a few values one
    # pass in Python is cheaper than numpy's reduction machinery, run once per request.
    if matrix.size <= _FEW_VALUES and max(map(abs, chain.from_iterable(rows))) <= _FLOAT32_MAX:
        return matrix
    return ensure_finite(matrix, where)


def named_records(
    records: list[Any], features: Sequence[str] | None, max_rows: int, where: str, dtype: Any = np.float32
) -> np.ndarray:
    """Records keyed by feature name, in any key order -> float32 in the model's column order."""
    if features is None:
        raise InvalidInput(
            f"{where}: this model has no feature_names metadata; send rows of numbers instead of records"
        )
    check_row_count(len(records), max_rows, where)
    expected = set(features)
    rows = []
    for r, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"{where}[{r}]: expected an object keyed by feature name")
        if record.keys() != expected:
            missing = [f for f in features if f not in record]
            unknown = sorted(set(record) - expected)
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(unknown)}")
            raise InvalidInput(f"{where}[{r}]: {'; '.join(parts)}")
        rows.append([record[f] for f in features])
    return numeric_rows(rows, len(features), max_rows, where, dtype)


def columns_and_rows(
    columns: list[Any],
    rows: list[Any],
    features: Sequence[str] | None,
    width: int,
    max_rows: int,
    where: str,
    dtype: Any = np.float32,
) -> np.ndarray:
    """MLflow's dataframe_split: named columns, reordered to the model's features."""
    if not isinstance(rows, list):
        raise InvalidInput(f"{where}.data: expected a list of rows")
    if not columns:
        return numeric_rows(rows, width, max_rows, f"{where}.data", dtype)
    if not all(isinstance(c, str) for c in columns):
        raise InvalidInput(f"{where}.columns: expected a list of column names")
    if features is None:
        # Names that cannot be checked would be scored in the order sent, right or not.
        raise InvalidInput(
            f"{where}: this model has no feature_names metadata, so named columns cannot be put in its order; "
            "send rows of numbers in the model's column order without names (e.g. 'instances'), "
            "or import the model with its feature names"
        )
    if list(columns) == list(features):
        return numeric_rows(rows, width, max_rows, f"{where}.data", dtype)
    unknown = [c for c in columns if c not in features]
    missing = [f for f in features if f not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        detail = "; ".join(
            p
            for p in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(unknown)}" if unknown else "",
                "duplicate column names" if len(set(columns)) != len(columns) else "",
            )
            if p
        )
        raise InvalidInput(f"{where}.columns: {detail}")
    matrix = numeric_rows(rows, len(columns), max_rows, f"{where}.data", dtype)
    order = [columns.index(f) for f in features]
    return np.ascontiguousarray(matrix[:, order])


def json_rows(
    data: Any, features: Sequence[str] | None, width: int, max_rows: int, where: str, dtype: Any = np.float32
) -> np.ndarray:
    """Rows as plain JSON: numbers, one row, records, or one record."""
    if isinstance(data, dict):
        return named_records([data], features, max_rows, where, dtype)
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: expected a list of rows, got {type(data).__name__}")
    if data and isinstance(data[0], dict):
        return named_records(data, features, max_rows, where, dtype)
    return numeric_rows(data, width, max_rows, where, dtype)
