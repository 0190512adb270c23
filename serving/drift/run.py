"""`python -m serving drift`: read the period's captured records, compare, write the report, and say
by the exit code whether anything drifted past its threshold."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from serving.drift.baseline import Baseline, column_names, load_baseline
from serving.drift.compare import Verdict, category_verdict, is_categorical, numeric_verdict
from serving.drift.period import Period, iso, period_from
from serving.drift.problems import DriftInputError, missing_library
from serving.drift.records import Captured, read_file
from serving.drift.report import Report, Section, markdown, write
from serving.drift.stores import captured_files, open_store
from serving.exit_codes import Drift
from serving.runtime import ModelLoadError, ModelRuntime


def run_drift(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except DriftInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return Drift.BAD_INPUT
    except ImportError as error:  # a library that is only imported for the source or step that needs it
        print(f"error: {missing_library(error)}", file=sys.stderr)
        return Drift.BAD_INPUT


def _model(location: str | None) -> ModelRuntime:
    from pydantic import ValidationError

    from serving.settings import describe_settings_error, load_settings

    try:
        settings = load_settings(**({"model": Path(location)} if location else {}))
        return ModelRuntime(settings.model)
    except ValidationError as error:
        raise DriftInputError(describe_settings_error(error)) from None
    except ModelLoadError as error:
        raise DriftInputError(str(error)) from None


def _check_thresholds(args: argparse.Namespace) -> None:
    for option, value in (("--numeric-threshold", args.numeric_threshold), ("--category-threshold",
                          args.category_threshold), ("--min-rows", args.min_rows)):  # fmt: skip
        if not value > 0:
            raise DriftInputError(f"{option} {value:g}: expected a number above 0")


def _run(args: argparse.Namespace) -> int:
    _check_thresholds(args)
    period = period_from(args.since, args.until, args.days)
    runtime = _model(args.model)
    baseline = load_baseline(runtime, args.baseline_rows)
    store = open_store(args.source, args.endpoint_url, args.connection_string, args.account_url)
    captured = Captured()
    files = captured_files(store, period)
    for key in files:
        read_file(store.read(key), key, runtime, period, captured)
    where = f"{store.description} from {period.describe()}"
    if captured.rows < args.min_rows:
        found = f"{len(files)} files, {captured.records} records, {captured.rows} rows"
        why = f"; first problem: {captured.problems[0]}" if captured.problems else ""
        raise DriftInputError(
            f"too few captured rows to judge in {where} ({found}{why}); need --min-rows {args.min_rows}: check "
            "--source (down to the endpoint) and the period, and that capture is on"
        )
    report = _report(args, runtime, baseline, store.description, period, captured)
    page, summary = write(report, Path(args.output_dir))
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as file:
            file.write(markdown(report))
    for section in [*report.columns, report.predictions]:
        v = section.verdict
        print(f"{section.name}: " + (f"{v.statistic} {v.value:.4f} (threshold {v.threshold:g}): "
              + ("DRIFT" if v.drifted else "no drift") if v else section.note))  # fmt: skip
    print(f"wrote {page} and {summary}")
    if report.drifted:
        print(f"drift past the threshold in {', '.join(report.drifted)}", file=sys.stderr)
        return Drift.DRIFT
    return Drift.NO_DRIFT


def _verdict(name: str, stats: dict[str, Any], values: Any, args: argparse.Namespace) -> Verdict:
    if is_categorical(stats):
        return category_verdict(name, stats, list(values), args.category_threshold)
    return numeric_verdict(name, stats, np.asarray(values, dtype=float), args.numeric_threshold)


def _report(
    args: argparse.Namespace, runtime: ModelRuntime, baseline: Baseline, source: str, period: Period, captured: Captured
) -> Report:
    matrix = captured.matrix(runtime.n_features)
    if matrix.dtype != object:  # object-typed for a model with text columns
        matrix = matrix.astype(np.float64)
    columns = []
    for index, name in enumerate(column_names(runtime)):
        stats = baseline.columns[name]
        values = matrix[:, index] if is_categorical(stats) else matrix[:, index].astype(np.float64)
        columns.append(Section(name, stats, values, _verdict(name, stats, values, args)))
    predictions = _predictions(args, baseline, captured)
    counts = {"records": captured.records, "rows": captured.rows, "records_skipped": captured.skipped,
              "records_outside_period": captured.outside_period,
              "records_of_other_models": captured.other_model}  # fmt: skip
    return Report(
        model={"name": runtime.name, "version": runtime.version},
        source=source,
        period={"since": iso(period.since), "until": iso(period.until)},
        baseline=baseline.origin,
        counts=counts,
        problems=captured.problems,
        columns=columns,
        predictions=predictions,
    )


def _predictions(args: argparse.Namespace, baseline: Baseline, captured: Captured) -> Section:
    name, stats = "predictions", baseline.predictions
    if stats is None:
        note = "not judged: the baseline has no predictions (re-import the model, or pass --baseline-rows)"
        return Section(name, None, [], None, note)
    values: Any = captured.predictions
    if not is_categorical(stats):
        values = np.array([v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)], dtype=float)
    if len(values) == 0:
        return Section(name, stats, values, None, "not judged: no predictions were captured (outputs not captured?)")
    return Section(name, stats, values, _verdict(name, stats, values, args))
