"""The statistics: each column's captured values against its baseline, which holds quantiles and
category frequencies rather than raw rows, so the tests are ones that work from those.

- Numbers: the Wasserstein distance between the baseline's and the captured values' quantile functions
  (both taken at the baseline's 5-95 % quantiles, linear between them, as the importer computes them),
  in baseline standard deviations. Evidently's default test for numeric columns is this normed distance
  with a threshold of 0.1. Comparing quantile functions computed the same way on both sides keeps
  columns of few distinct values (a 0/1/2 code) at 0 when nothing changed, where bins would not.
- Categories (class labels included): the population stability index over the baseline's frequencies
  (values it never saw count as "(other)" or "(new)"); above 0.2 is the usual rule for a real shift.
  Unlike a chi-square test it does not call every tiny change significant once a week has many rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import rel_entr
from scipy.stats import wasserstein_distance

WASSERSTEIN = "wasserstein_distance_in_std"
PSI = "population_stability_index"
GRID = (np.arange(200) + 0.5) / 200  # where the two quantile functions are compared
FLOOR = 1e-4  # a share of 0 would make PSI infinite
OTHER, NEW = "(other)", "(new)"


@dataclass
class Verdict:
    name: str
    statistic: str
    value: float
    threshold: float
    rows: int

    @property
    def drifted(self) -> bool:
        return self.value > self.threshold

    def summary(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "value": round(self.value, 6),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "rows": self.rows,
        }


def is_categorical(stats: dict[str, Any]) -> bool:
    return "frequencies" in stats


def levels_and_quantiles(stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    pairs = sorted((float(level), float(value)) for level, value in stats["quantiles"].items())
    return np.array([p for p, _ in pairs]), np.array([v for _, v in pairs])


def numeric_verdict(name: str, stats: dict[str, Any], values: np.ndarray, threshold: float) -> Verdict:
    levels, expected = levels_and_quantiles(stats)
    observed = np.quantile(values, levels)  # linear interpolation, as pandas computed the baseline's
    distance = wasserstein_distance(np.interp(GRID, levels, expected), np.interp(GRID, levels, observed))
    std = float(stats.get("std") or 0.0)
    scale = std if std > 0 else max(abs(float(stats.get("mean") or 0.0)), 1.0)  # a constant column
    return Verdict(name, WASSERSTEIN, float(distance) / scale, threshold, len(values))


def category_key(value: Any) -> str:
    """1, 1.0 and "1" are one category: JSON, CSV and the importer's labels spell numbers differently."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value).strip()
    return str(int(number)) if math.isfinite(number) and number.is_integer() else repr(number)


def shares(stats: dict[str, Any], values: list[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Categories, the baseline's shares and the captured values' shares, in the same order."""
    expected: dict[str, float] = {}
    for key, share in stats["frequencies"].items():
        label = key if key == OTHER else category_key(key)
        expected[label] = expected.get(label, 0.0) + float(share)
    counts = dict.fromkeys(expected, 0)
    for value in values:
        key = category_key(value)
        if key not in expected:
            key = OTHER if OTHER in expected else NEW
        counts[key] = counts.get(key, 0) + 1
    names = list(counts)
    observed = np.array([counts[n] for n in names], dtype=float) / max(len(values), 1)
    return names, np.array([expected.get(n, 0.0) for n in names]), observed


def category_verdict(name: str, stats: dict[str, Any], values: list[Any], threshold: float) -> Verdict:
    _, expected, observed = shares(stats, values)
    e, o = np.maximum(expected, FLOOR), np.maximum(observed, FLOOR)
    e, o = e / e.sum(), o / o.sum()
    psi = float(np.sum(rel_entr(o, e) + rel_entr(e, o)))  # sum (o - e) * ln(o / e)
    return Verdict(name, PSI, psi, threshold, len(values))
