"""The statistics on their own: what a shift, a code column and unseen categories do to the verdicts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from importer.baseline import column_stats
from serving.drift.compare import NEW, OTHER, category_verdict, numeric_verdict, shares

RNG = np.random.default_rng(7)


def stats_of(values: np.ndarray | list[str]) -> dict:
    return json.loads(json.dumps(column_stats(pd.Series(values))))  # as stored in the model


def test_a_shift_reads_in_baseline_standard_deviations() -> None:
    baseline = stats_of(RNG.normal(10.0, 2.0, 5000))
    same = numeric_verdict("x", baseline, RNG.normal(10.0, 2.0, 2000), 0.1)
    moved = numeric_verdict("x", baseline, RNG.normal(12.0, 2.0, 2000), 0.1)
    assert same.value < 0.05
    assert not same.drifted
    assert moved.value == pytest.approx(1.0, abs=0.1)
    assert moved.drifted


def test_a_column_of_few_codes_shows_no_drift_until_their_shares_change() -> None:
    baseline = stats_of(RNG.integers(0, 3, 5000).astype(float))
    assert numeric_verdict("code", baseline, RNG.integers(0, 3, 2000).astype(float), 0.1).value == 0.0
    skewed = RNG.choice([0.0, 1.0, 2.0], 2000, p=[0.1, 0.2, 0.7])
    assert numeric_verdict("code", baseline, skewed, 0.1).drifted


def test_a_constant_column_is_measured_against_its_value() -> None:
    baseline = stats_of(np.full(100, 5.0))
    assert numeric_verdict("c", baseline, np.full(50, 5.0), 0.1).value == 0.0
    assert numeric_verdict("c", baseline, np.full(50, 6.0), 0.1).value == pytest.approx(0.2)


def test_categories_are_the_same_however_numbers_are_spelled() -> None:
    baseline = stats_of(["0"] * 60 + ["1"] * 40)
    names, expected, observed = shares(baseline, [0, 1.0, "1", "0", 0.0])
    assert names == ["0", "1"]
    np.testing.assert_allclose(expected, [0.6, 0.4])
    np.testing.assert_allclose(observed, [0.6, 0.4])
    assert category_verdict("label", baseline, [0] * 60 + [1] * 40, 0.2).value == pytest.approx(0.0, abs=1e-9)


def test_unseen_categories_count_as_new_and_move_the_index() -> None:
    baseline = stats_of(["dry"] * 70 + ["rain"] * 30)
    names, _, observed = shares(baseline, ["dry"] * 50 + ["snow"] * 50)
    assert names == ["dry", "rain", NEW]
    np.testing.assert_allclose(observed, [0.5, 0.0, 0.5])
    assert category_verdict("label", baseline, ["dry"] * 50 + ["snow"] * 50, 0.2).drifted
    many = stats_of([f"c{i % 25}" for i in range(1000)])  # beyond the baseline's top 20: "(other)"
    assert OTHER in shares(many, ["c24", "c99"])[0]
    assert not category_verdict("c", many, [f"c{i % 25}" for i in range(500)], 0.2).drifted
