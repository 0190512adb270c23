"""The statistics the captured data is compared with: the model's `baseline` metadata (written by
`python -m importer`), or derived from rows the user gives by the same code, scoring them for the
predictions' part."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.drift.problems import DriftInputError
from serving.runtime import ModelRuntime

Stats = dict[str, Any]


@dataclass
class Baseline:
    columns: dict[str, Stats]  # in the model's column order
    predictions: Stats | None  # None: the model was imported before predictions had a baseline
    origin: str


def column_names(runtime: ModelRuntime) -> list[str]:
    """The model's feature names, or column_1... as the importer names unnamed columns."""
    return list(runtime.feature_names or [f"column_{i + 1}" for i in range(runtime.n_features)])


def model_metadata(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def load_baseline(runtime: ModelRuntime, rows_csv: str | None) -> Baseline:
    if rows_csv is not None:
        return from_rows(runtime, Path(rows_csv))
    raw = model_metadata(runtime.path).get("baseline")
    if raw is None:
        raise DriftInputError(
            f"model {runtime.path} has no baseline statistics: import it with `python -m importer ... --sample "
            "rows.csv` (the baseline is stored in the model), or pass --baseline-rows rows.csv"
        )
    try:
        value = json.loads(raw)
        columns, predictions = value["columns"], value.get("predictions")
    except (ValueError, KeyError, TypeError):
        raise DriftInputError(f"model {runtime.path}: its baseline metadata is not the importer's JSON") from None
    names = column_names(runtime)
    missing = [n for n in names if n not in columns]
    if missing:
        raise DriftInputError(
            f"model {runtime.path}: its baseline has no statistics for {', '.join(missing)}; re-import the model"
        )
    return Baseline({n: columns[n] for n in names}, predictions, "the model's baseline metadata")


def from_rows(runtime: ModelRuntime, path: Path) -> Baseline:
    """Statistics of `path`'s rows and of the model's predictions on them (importer/baseline.py's own)."""
    import numpy as np

    from importer.baseline import baseline
    from importer.problems import ImportProblem
    from importer.rows import from_csv

    names = column_names(runtime)
    try:
        rows = from_csv(path, runtime.n_features, list(runtime.feature_names) if runtime.feature_names else None)
    except ImportProblem as problem:
        raise DriftInputError(str(problem).replace("--sample", "--baseline-rows")) from None
    frame = rows.frame.set_axis(names, axis=1)
    labels = runtime.predict(frame.to_numpy(dtype=np.float32)).labels
    value = json.loads(baseline(frame, labels))
    return Baseline(value["columns"], value.get("predictions"), f"{len(frame)} rows of {path.name}")
