"""The user's rows: `--sample` CSV or the MLflow model's input example, in the model's column order.

They decide whether the import passes, give the `sample_input` row (smoke tests, the stack's
`model_sample`) and the baseline statistics. Without them the check runs on made-up rows and says so.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from importer.problems import ImportProblem

MADE_UP_ROWS = 16


@dataclass
class Rows:
    frame: pd.DataFrame  # float64 (text columns: str), columns = the model's features (or column_1...)
    origin: str  # where they came from, for the report
    yours: bool  # the user's data (decides) or made up (a weak check)


def columns_for(n: int, names: list[str] | None) -> list[str]:
    return list(names) if names else [f"column_{i + 1}" for i in range(n)]


def from_csv(path: Path, n: int, names: list[str] | None, text: Mapping[str, list[str]] | None = None) -> Rows:
    """CSV rows with or without a header; with a header and feature names, columns are taken by name."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            lines = [r for r in csv.reader(file) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ImportProblem(f"--sample {path}: not readable as CSV ({error})", "check") from None
    if not lines:
        raise ImportProblem(f"--sample {path}: no rows", "check")
    header = None if _numeric(lines[0]) else lines[0]
    body = lines[1:] if header is not None else lines
    return _rows(header, body, n, names, f"--sample {path.name}", text or {})


def from_example(
    example: dict[str, Any], n: int, names: list[str] | None, text: Mapping[str, list[str]] | None = None
) -> Rows:
    columns = example.get("columns")
    header = [str(c) for c in columns] if columns else None
    return _rows(header, example["data"], n, names, "the MLflow input example", text or {})


def made_up(n: int, names: list[str] | None, text: Mapping[str, list[str]] | None = None) -> Rows:
    """Standard normal rows (text columns: their known categories in turn): enough to catch a broken
    conversion, not to vouch for it on real data."""
    values = np.random.default_rng(0).normal(0.0, 1.0, (MADE_UP_ROWS, n))
    frame = pd.DataFrame(values, columns=columns_for(n, names))
    for column, known in (text or {}).items():
        frame[column] = [known[i % len(known)] if known else "" for i in range(MADE_UP_ROWS)]
    return Rows(frame, "made-up rows", yours=False)


def _plain(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "_", name)


def _numeric(row: list[Any]) -> bool:
    try:
        [float(v) for v in row]
    except (TypeError, ValueError):
        return False
    return True


def _rows(
    header: list[str] | None, body: list[Any], n: int, names: list[str] | None, origin: str, text: Mapping[str, Any]
) -> Rows:
    columns = columns_for(n, names)
    if header is not None and names is not None and set(names) <= set(header):
        index = [header.index(c) for c in names]  # by name, any order; other columns are ignored
    elif header is not None and names is not None and {_plain(c) for c in names} <= {_plain(h) for h in header}:
        # LightGBM keeps names with spaces as "a_(cm)": the same column as the header's "a (cm)"
        plain = [_plain(h) for h in header]
        index = [plain.index(_plain(c)) for c in names]
    elif header is not None and names is not None:
        missing = ", ".join(c for c in names if c not in header)
        raise ImportProblem(f"{origin}: the header lacks the model's columns {missing}", "check")
    elif header is not None and len(header) != n:
        raise ImportProblem(
            f"{origin}: {len(header)} columns for a model of {n} features without names; pass --features a,b,c "
            "to take the model's columns by name",
            "check",
        )
    else:
        index = list(range(n))
    values = []
    is_text = [c in text for c in columns]
    for number, row in enumerate(body, start=1):
        if len(row) != (len(header) if header is not None else n):
            raise ImportProblem(f"{origin}: row {number} has {len(row)} values, expected {n}", "check")
        try:
            values.append([str(row[i]) if t else float(row[i]) for i, t in zip(index, is_text, strict=True)])
        except (TypeError, ValueError):
            raise ImportProblem(
                f"{origin}: row {number} is not all numbers ({row!r:.80}) outside the model's text columns "
                f"({', '.join(text) or 'none'})",
                "check",
            ) from None
    if not values:
        raise ImportProblem(f"{origin}: no rows", "check")
    frame = pd.DataFrame(values, columns=columns)
    numbers = [c for c, t in zip(columns, is_text, strict=True) if not t]
    frame[numbers] = frame[numbers].astype(np.float64)
    if not np.isfinite(frame[numbers].to_numpy()).all():
        raise ImportProblem(f"{origin}: NaN or infinite values; the server refuses those rows", "check")
    return Rows(frame, f"{origin} ({len(frame)} rows)", yours=True)
