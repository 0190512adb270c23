"""Rows for a model with one input per named, typed column (numbers, integers, text, booleans).

Every protocol's shapes (rows in the model's column order, records, named columns, CSV cells) become
one list of values per column here, and each column is checked against its type once: an error names
the row, the column and the type it takes. Single-matrix models never come here (serving/protocols/tabular.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from serving.errors import InvalidInput
from serving.protocols.tabular import check_row_count
from serving.runtime import Column, ColumnRows, ModelRuntime

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_LIMITS: dict[Any, Any] = {np.int32: np.iinfo(np.int32), np.int64: np.iinfo(np.int64)}
# The type a JSON value must have, by column kind; `None` is a missing number (NaN, for an imputer).
_ACCEPTED: dict[str, frozenset[type]] = {
    "number": frozenset((int, float, type(None))),
    "integer": frozenset((int,)),
    "string": frozenset((str,)),
    "boolean": frozenset((bool,)),
}
_WHAT = {
    "number": "a number (or null for a missing value)",
    "integer": "an integer",
    "string": "a string",
    "boolean": "true or false",
}
_CSV_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def expects(column: Column) -> str:
    """`column 'job' takes a string (tensor(string))`: the words every error about a value uses."""
    return f"column '{column.name}' takes {_WHAT[column.kind]} ({column.onnx_type})"


def _bad(column: Column, value: Any, row: int, where: str) -> InvalidInput:
    return InvalidInput(f"{where}[{row}]: {expects(column)}, got {value!r:.40}")


def _beyond(column: Column, value: Any, row: int, where: str) -> InvalidInput:
    return InvalidInput(
        f"{where}[{row}]: column '{column.name}': {value!r:.40} is infinite or beyond {column.onnx_type}"
    )


def _unknown(column: Column, value: Any, row: int, where: str) -> InvalidInput:
    known = ", ".join(map(str, column.known[:20])) + (", ..." if len(column.known) > 20 else "")
    return InvalidInput(
        f"{where}[{row}]: column '{column.name}': unknown category {value!r:.40}; the model was fitted "
        f"on {known} (its encoder refuses others: retrain with handle_unknown='ignore' to accept them)"
    )


def _array(column: Column, values: list[Any], where: str) -> np.ndarray:
    """One column's JSON values, checked, as the array the model's input takes."""
    accepted = _ACCEPTED[column.kind]
    if not set(map(type, values)) <= accepted:
        row = next(r for r, v in enumerate(values) if type(v) not in accepted)
        raise _bad(column, values[row], row, where)
    if column.kind == "number":
        try:
            array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        except OverflowError:  # an integer beyond any float
            row = next(r for r, v in enumerate(values) if v is not None and abs(v) > _FLOAT32_MAX)
            raise _beyond(column, values[row], row, where) from None
        limit = _FLOAT32_MAX if column.dtype is np.float32 else math.inf
        beyond = np.flatnonzero(np.abs(array) > limit) if limit < math.inf else np.flatnonzero(np.isinf(array))
        if beyond.size:  # (NaN compares false: a missing value is never beyond)
            row = int(beyond[0])
            raise _beyond(column, values[row], row, where)
        return array.astype(column.dtype)
    if column.kind == "integer":
        limits = _INT_LIMITS[column.dtype]
        for row, value in enumerate(values):
            if not limits.min <= value <= limits.max:
                raise InvalidInput(f"{where}[{row}]: column '{column.name}': {value} is beyond {column.onnx_type}")
        return np.array(values, dtype=column.dtype)
    if column.categories is not None:
        for row, value in enumerate(values):
            if value not in column.categories:
                raise _unknown(column, value, row, where)
    return np.array(values, dtype=column.dtype)


def from_columns(runtime: ModelRuntime, values: Sequence[list[Any]], where: str) -> ColumnRows:
    """One list of values per model column (in the model's order), all equally long -> the model's feed."""
    columns = runtime.columns or ()
    count = len(values[0]) if values else 0
    feed = {}
    for column, column_values in zip(columns, values, strict=True):
        array = _array(column, column_values, where)
        feed[column.input] = array.reshape(-1, 1) if column.rank == 2 else array
    return ColumnRows(feed, count)


def rows(data: list[Any], runtime: ModelRuntime, max_rows: int, where: str) -> ColumnRows:
    """Rows of values in the model's column order (or one such row)."""
    names = runtime.feature_names or ()
    if data and type(data[0]) is not list:
        data = [data]
    check_row_count(len(data), max_rows, where)
    for r, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(names):
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise InvalidInput(
                f"{where}[{r}]: expected {len(names)} values in the model's order ({', '.join(names)}), got {got}"
            )
    return from_columns(runtime, [list(column) for column in zip(*data, strict=True)], where)


def records(data: list[Any], runtime: ModelRuntime, max_rows: int, where: str) -> ColumnRows:
    """Objects keyed by column name, in any key order."""
    names = runtime.feature_names or ()
    check_row_count(len(data), max_rows, where)
    expected = set(names)
    for r, record in enumerate(data):
        if not isinstance(record, dict):
            raise InvalidInput(f"{where}[{r}]: expected an object keyed by column name ({', '.join(names)})")
        if record.keys() != expected:
            raise InvalidInput(f"{where}[{r}]: {_difference(list(record), names)}")
    return from_columns(runtime, [[record[name] for record in data] for name in names], where)


def named(columns: list[Any], data: Any, runtime: ModelRuntime, max_rows: int, where: str) -> ColumnRows:
    """Named columns and rows in that order (MLflow's dataframe_split), put in the model's order."""
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data: expected a list of rows")
    if not columns:
        return rows(data, runtime, max_rows, f"{where}.data")
    names = list(runtime.feature_names or ())
    if not all(isinstance(c, str) for c in columns) or sorted(columns) != sorted(names):
        raise InvalidInput(f"{where}.columns: {_difference([str(c) for c in columns], names)}")
    order = [columns.index(name) for name in names]
    reordered = [[row[i] for i in order] if isinstance(row, list) and len(row) == len(names) else row for row in data]
    return rows(reordered, runtime, max_rows, f"{where}.data")


def by_name(data: dict[str, Any], runtime: ModelRuntime, max_rows: int, where: str) -> ColumnRows:
    """`{"column": [values...], ...}`: whole columns by name."""
    names = list(runtime.feature_names or ())
    if data.keys() != set(names):
        raise InvalidInput(f"{where}: {_difference(list(data), names)}")
    values = [data[name] for name in names]
    if not all(isinstance(v, list) for v in values) or len({len(v) for v in values}) != 1:
        raise InvalidInput(f"{where}: expected an object of equally long lists, one per column")
    check_row_count(len(values[0]), max_rows, where)
    return from_columns(runtime, values, where)


def json_rows(data: Any, runtime: ModelRuntime, max_rows: int, where: str) -> ColumnRows:
    """Plain JSON: rows in the model's order, one row, records, or one record."""
    if isinstance(data, dict):
        return records([data], runtime, max_rows, where)
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: expected a list of rows or records, got {type(data).__name__}")
    if data and isinstance(data[0], dict):
        return records(data, runtime, max_rows, where)
    return rows(data, runtime, max_rows, where)


def _difference(given: list[str], names: Sequence[str]) -> str:
    missing = [n for n in names if n not in given]
    unknown = [g for g in given if g not in names]
    parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
    if len(set(given)) != len(given):
        parts.append("duplicate column names")
    return "; ".join(p for p in parts if p) + f" (the model's columns: {', '.join(names)})"


def csv_cell(column: Column, cell: str, row: int, where: str) -> Any:
    """A CSV cell as the JSON value it stands for; an empty number cell is a missing value."""
    try:
        if column.kind == "number":
            return float(cell) if cell.strip() else None
        if column.kind == "integer":
            return int(cell)
        if column.kind == "boolean":
            return _CSV_BOOLEANS[cell.strip().lower()]
    except (ValueError, KeyError):
        raise _bad(column, cell, row, where) from None
    return cell


def csv_rows(lines: list[list[str]], order: list[int] | None, runtime: ModelRuntime, where: str) -> ColumnRows:
    """CSV cells (strings), in the model's column order or in `order` (a header's)."""
    columns = runtime.columns or ()
    width = len(columns)
    for r, line in enumerate(lines):
        if len(line) != width:
            raise InvalidInput(f"{where} row {r + 1}: expected {width} values, got {len(line)}")
    positions = order if order is not None else list(range(width))
    values = [
        [csv_cell(column, line[position], r, where) for r, line in enumerate(lines)]
        for column, position in zip(columns, positions, strict=True)
    ]
    return from_columns(runtime, values, where)
