"""Captured records (SageMaker Data Capture's JSON Lines) -> the input rows and predictions they hold.

Inputs are parsed by the server's own `/invocations` parsers, so whatever the endpoint accepted (CSV in
the model's column order, MLflow's dataframe_split/records, instances, inputs) is read the same way here.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from serving.drift.period import Period, parse_moment
from serving.drift.problems import DriftInputError
from serving.errors import RequestError
from serving.protocols.sagemaker import media_type, parse_invocation
from serving.runtime import ColumnRows, ModelRuntime

MAX_ROWS_PER_RECORD = 1_000_000  # a captured request was accepted once: no per-request limit here
PROBLEMS_KEPT = 5


class RecordProblem(Exception):
    pass


@dataclass
class Captured:
    """What the period's records hold; unreadable records are counted and the first few described."""

    inputs: list[np.ndarray] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    records: int = 0
    outside_period: int = 0
    other_model: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(m) for m in self.inputs)

    def matrix(self, width: int) -> np.ndarray:
        return np.concatenate(self.inputs) if self.inputs else np.empty((0, width), dtype=np.float32)

    def skip(self, where: str, problem: str) -> None:
        self.skipped += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(f"{where}: {problem}")


def read_file(data: bytes, key: str, runtime: ModelRuntime, period: Period, captured: Captured) -> None:
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        captured.records += 1
        try:
            record, moment = _record(line)
            if moment not in period:
                captured.outside_period += 1
                continue
            if _other_model(record["eventMetadata"], runtime):
                captured.other_model += 1
                continue
            rows, predictions = parse_contents(record["captureData"], runtime)
        except RecordProblem as problem:
            captured.skip(f"{key} line {number}", str(problem))
            continue
        captured.inputs.append(rows)
        if predictions is not None and len(predictions) == len(rows):
            captured.predictions += predictions
        elif predictions is not None:
            captured.skip(f"{key} line {number}", f"{len(predictions)} predictions for {len(rows)} input rows")


def _record(line: bytes) -> tuple[dict[str, Any], datetime]:
    try:
        record = json.loads(line)
        when = record["eventMetadata"]["inferenceTime"]
        if not isinstance(record["captureData"], dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RecordProblem(
            "not a capture record (expected JSON with captureData and eventMetadata.inferenceTime)"
        ) from None
    try:
        return record, parse_moment(str(when), "inferenceTime")
    except DriftInputError as error:
        raise RecordProblem(str(error)) from None


def _other_model(metadata: dict[str, Any], runtime: ModelRuntime) -> bool:
    """A record of another model or version (one deployed earlier in the period), when the record says:
    its predictions are not this model's, and its baseline is not this one. SageMaker's own capture
    does not say (its folders are per variant)."""
    name, version = metadata.get("modelName"), metadata.get("modelVersion")
    return (name is not None and str(name) != runtime.name) or (version is not None and str(version) != runtime.version)


def parse_contents(capture: dict[str, Any], runtime: ModelRuntime) -> tuple[np.ndarray, list[Any] | None]:
    """The input rows (as the server read them) and one prediction per row, if the output was captured."""
    body, content_type = _body(capture.get("endpointInput"), "endpointInput")
    try:
        rows, _ = parse_invocation(body, content_type, "", runtime, MAX_ROWS_PER_RECORD)
    except RequestError as error:
        raise RecordProblem(f"endpointInput: {error.message}") from None
    if isinstance(rows, ColumnRows):  # one array per column, text among them: a matrix of objects
        columns = runtime.columns or ()
        matrix = np.empty((len(rows), len(columns)), dtype=object)
        for index, column in enumerate(columns):
            matrix[:, index] = rows.feed[column.input].reshape(-1)
        rows = matrix
    output = capture.get("endpointOutput")
    predictions = _labels(*_body(output, "endpointOutput"), runtime) if output else None
    return rows, predictions


def _body(part: Any, where: str) -> tuple[bytes, str]:
    if not isinstance(part, dict) or "data" not in part:
        raise RecordProblem(f"{where}: missing, or without data")
    data, encoding = part["data"], str(part.get("encoding") or "").upper()
    content_type = str(part.get("observedContentType") or ("text/csv" if encoding == "CSV" else "application/json"))
    if not isinstance(data, str):  # a JSON body written as JSON rather than as text
        return json.dumps(data).encode(), content_type
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True), content_type
        except (binascii.Error, ValueError):
            raise RecordProblem(f"{where}: data is not base64 although its encoding says BASE64") from None
    return data.encode(), content_type


def _labels(body: bytes, content_type: str, runtime: ModelRuntime) -> list[Any]:
    """One prediction per row: the label or value; probabilities become the most likely class."""
    if media_type(content_type) == "text/csv":
        try:
            rows = [r for r in csv.reader(io.StringIO(body.decode("utf-8-sig"))) if r]
        except (UnicodeDecodeError, csv.Error) as error:
            raise RecordProblem(f"endpointOutput: not CSV ({error})") from None
        values: list[Any] = [_number(r[0]) if len(r) == 1 else [_number(c) for c in r] for r in rows]
    else:
        try:
            payload = json.loads(body)
        except ValueError:
            raise RecordProblem("endpointOutput: not JSON") from None
        found = payload.get("predictions") if isinstance(payload, dict) else payload
        if not isinstance(found, list):
            raise RecordProblem('endpointOutput: expected {"predictions": [...]} or a list')
        values = found
    return [_label(v, runtime) for v in values]


def _number(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell.strip()


def _label(value: Any, runtime: ModelRuntime) -> Any:
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        best = int(np.argmax(value))
        classes = runtime.classes
        return classes[best] if classes is not None and best < len(classes) else best
    if isinstance(value, (dict, list)):
        raise RecordProblem(f"endpointOutput: cannot read a prediction from {json.dumps(value)[:60]}")
    return value
