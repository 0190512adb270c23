"""SageMaker's `/invocations`: MLflow scoring JSON, the `/score` body, or CSV; JSON or CSV back."""

from __future__ import annotations

import csv
import io

import numpy as np

from serving.errors import InvalidInput, NotAcceptable, UnsupportedMediaType
from serving.protocols import columns as typed
from serving.protocols.jsonbody import METHODS, json_object, method_from
from serving.protocols.tabular import check_row_count, columns_and_rows, ensure_finite, json_rows
from serving.runtime import ModelRuntime, Prediction, Rows

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs", "data")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def method_from_custom_attributes(header: str) -> str | None:
    """`X-Amzn-SageMaker-Custom-Attributes: method=predict_proba`, the only per-request knob CSV has."""
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "method":
            value = value.strip()
            if value not in METHODS:
                raise InvalidInput(f"custom attribute method: expected one of {', '.join(METHODS)}, got {value!r:.40}")
            return value
    return None


def parse_json_invocation(body: bytes, runtime: ModelRuntime, max_rows: int) -> tuple[Rows, str | None]:
    payload = json_object(body)
    present = [key for key in MLFLOW_KEYS if key in payload]
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else "found none"
        raise InvalidInput(f"request body must have exactly one of {', '.join(MLFLOW_KEYS)}; {found}")
    key = present[0]
    method = method_from(payload) if "method" in payload else None
    if runtime.columns is not None:
        return _typed_json(key, payload[key], runtime, max_rows), method
    features, width, dtype = runtime.feature_names, runtime.n_features, runtime.input_dtype
    if key == "dataframe_split":
        split = payload[key]
        if not isinstance(split, dict) or "data" not in split:
            raise InvalidInput("dataframe_split: expected an object with 'columns' and 'data'")
        columns = split.get("columns") or []
        if not isinstance(columns, list):
            raise InvalidInput("dataframe_split.columns: expected a list of column names")
        return columns_and_rows(columns, split["data"], features, width, max_rows, key, dtype), method
    if key == "inputs" and isinstance(payload[key], dict):
        # Column-oriented tensor input: {"inputs": {"feature": [values...], ...}}.
        columns = payload[key]
        names = list(columns)
        values = list(columns.values())
        if not all(isinstance(v, list) for v in values) or len({len(v) for v in values}) > 1:
            raise InvalidInput("inputs: expected an object of equally long columns of numbers")
        rows = [list(r) for r in zip(*values, strict=True)]
        return columns_and_rows(names, rows, features, width, max_rows, key, dtype), method
    return json_rows(payload[key], features, width, max_rows, key, dtype), method


def _typed_json(key: str, value: object, runtime: ModelRuntime, max_rows: int) -> Rows:
    """The same MLflow shapes for a model with one input per typed column."""
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidInput("dataframe_split: expected an object with 'columns' and 'data'")
        names = value.get("columns") or []
        if not isinstance(names, list):
            raise InvalidInput("dataframe_split.columns: expected a list of column names")
        return typed.named(names, value["data"], runtime, max_rows, key)
    if key == "inputs" and isinstance(value, dict):
        return typed.by_name(value, runtime, max_rows, key)
    return typed.json_rows(value, runtime, max_rows, key)


def _csv_rows(text: str, limit: int) -> list[list[str]]:
    """Non-blank CSV rows; stops reading once there are more than `limit`, so a huge body costs little."""
    rows: list[list[str]] = []
    # newline=None: universal newlines, so bare CR line ends (old Mac, some exporters) are line ends too.
    reader = csv.reader(io.StringIO(text, newline=None))
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append(row)
                if len(rows) > limit:
                    raise InvalidInput(f"CSV: more than {limit - 1} rows; the limit is {limit - 1} rows per request")
    except csv.Error as error:
        raise InvalidInput(f"CSV line {reader.line_num}: {error} (quote fields with quotes in them)") from None
    return rows


def parse_csv(body: bytes, runtime: ModelRuntime, max_rows: int) -> Rows:
    """CSV rows, with an optional header of feature names (any order)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("CSV body is not UTF-8 text") from None
    lines = _csv_rows(text, max_rows + 1)  # one more: the first line may be a header
    if not lines:
        raise InvalidInput("CSV body has no rows to score")
    features = runtime.feature_names
    order = None
    first = [cell.strip() for cell in lines[0]]
    if features is not None and set(first) & set(features):
        if sorted(first) != sorted(features):
            missing = [f for f in features if f not in first]
            unknown = [c for c in first if c not in features]
            raise InvalidInput(f"CSV header: missing {', '.join(missing) or '-'}; unknown {', '.join(unknown) or '-'}")
        order = [first.index(f) for f in features]
        lines = lines[1:]
    check_row_count(len(lines), max_rows, "CSV")
    if runtime.columns is not None:
        return typed.csv_rows(lines, order, runtime, "CSV rows")
    width = runtime.n_features
    for r, row in enumerate(lines):
        if len(row) != width:
            raise InvalidInput(f"CSV row {r + 1}: expected {width} values, got {len(row)}")
    try:
        matrix = np.array(lines, dtype=runtime.input_dtype)
    except ValueError:
        for r, row in enumerate(lines):
            for c, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    raise InvalidInput(f"CSV row {r + 1}, column {c + 1}: {cell!r:.40} is not a number") from None
        raise InvalidInput("CSV body: values are not numbers") from None
    if order is not None:
        matrix = np.ascontiguousarray(matrix[:, order])
    return ensure_finite(matrix, "CSV rows")


def wants_csv(accept: str) -> bool:
    """Pick the response format from Accept (RFC 9110 quality values); JSON unless CSV is preferred."""
    if not accept:
        return False
    choice = negotiate(accept, ("application/json", "text/csv"))
    if choice is None:
        raise NotAcceptable(f"cannot answer with {accept!r:.60}; accepted: application/json, text/csv")
    return choice == "text/csv"


def negotiate(accept: str, offers: tuple[str, ...]) -> str | None:
    """The offer the client prefers: highest q; on a tie the one it lists first, then ours; None if none.

    Each offer takes its q from the most specific range that matches it (`text/csv;q=0` beats `*/*`).
    """
    ranges = []
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        ranges.append((media.strip().lower(), q, position))
    best: tuple[float, int, int] | None = None
    chosen = None
    for rank, offer in enumerate(offers):
        specific = {offer: 2, offer.split("/")[0] + "/*": 1, "*/*": 0}
        matching = [(specific[m], q, position) for m, q, position in ranges if m in specific]
        if not matching:
            continue
        _, quality, position = max(matching, key=lambda match: (match[0], -match[2]))
        key = (quality, -position, -rank)
        if quality > 0 and (best is None or key > best):
            best, chosen = key, offer
    return chosen


def parse_invocation(
    body: bytes, content_type: str, custom_attributes: str, runtime: ModelRuntime, max_rows: int
) -> tuple[Rows, str]:
    kind = media_type(content_type) or "application/json"
    header_method = method_from_custom_attributes(custom_attributes) if custom_attributes else None
    if kind == "application/json":
        rows, body_method = parse_json_invocation(body, runtime, max_rows)
        return rows, body_method or header_method or "predict"
    if kind == "text/csv":
        return parse_csv(body, runtime, max_rows), header_method or "predict"
    raise UnsupportedMediaType(f"unsupported content type {content_type!r:.60}; use application/json or text/csv")


def csv_body(prediction: Prediction, method: str) -> bytes:
    values = prediction.probabilities if method == "predict_proba" else prediction.labels
    if values is None:
        raise InvalidInput("this model gives no probabilities; use method=predict")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if values.ndim == 1:
        writer.writerows([v] for v in values.tolist())
    else:
        writer.writerows(values.tolist())
    return buffer.getvalue().encode()
