"""python -m importer: make the server's ONNX model from a scikit-learn pickle, the seeds' scaler + ONNX
pair, an MLflow model directory or an ONNX file, check it against the original, print its sha256.

    python -m importer model.pkl -o model.onnx --name churn --version 3 --sample rows.csv
    python -m importer svc.onnx --scaler scaler.pkl -o model.onnx --name weather-rain --version 2
    python -m importer mlruns/.../artifacts/model -o model.onnx --name churn --version 3

Exit codes: 0 done, 2 bad arguments or a model that cannot be imported (the message says why).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx

from importer.convert import (
    UNPICKLING_WARNING,
    Imported,
    ImportProblem,
    finish,
    from_estimator,
    from_mlflow,
    from_onnx,
    load_pickle,
    max_difference,
    merge_scaler,
)

TOLERANCE = 1e-4  # float32 ONNX against float64 scikit-learn


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m importer", description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a .pkl/.joblib estimator, an .onnx file or an MLflow model directory")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the ONNX model")
    p.add_argument("--name", required=True, help="model name the endpoint reports (lowercase, digits, -)")
    p.add_argument("--version", required=True, help="model version the endpoint reports")
    p.add_argument("--scaler", type=Path, help="a fitted scaler (.pkl) applied before SOURCE (.onnx): the seeds' pair")
    p.add_argument("--features", help="comma-separated feature names, when the model does not carry them")
    p.add_argument("--sample", type=Path, help="CSV rows (with or without a header) to check the result on")
    return p


def load(args: argparse.Namespace, features: list[str] | None) -> Imported:
    source: Path = args.source
    if not source.exists():
        raise ImportProblem(f"{source}: no such file or directory")
    if args.scaler is not None:
        if source.suffix != ".onnx":
            raise ImportProblem("--scaler goes with an .onnx SOURCE (the model that follows the scaler)")
        return merge_scaler(load_pickle(args.scaler), source, features)
    if source.is_dir():
        if not (source / "MLmodel").is_file():
            raise ImportProblem(f"{source}: a directory, but not an MLflow model (no MLmodel file)")
        return from_mlflow(source, features)
    if source.suffix == ".onnx":
        return from_onnx(source, features)
    if source.suffix in (".pkl", ".pickle", ".joblib"):
        return from_estimator(load_pickle(source), features)
    raise ImportProblem(f"{source}: expected .pkl, .joblib, .onnx or an MLflow model directory")


def sample_rows(path: Path | None, n_features: int) -> np.ndarray:
    if path is None:
        rng = np.random.default_rng(0)
        return rng.normal(0.0, 1.0, (16, n_features)).astype(np.float32)
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = [r for r in csv.reader(file) if r]
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        rows = rows[1:]  # a header
    try:
        values = np.array([[float(v) for v in row] for row in rows], dtype=np.float32)
    except ValueError as error:
        raise ImportProblem(f"{path}: not numeric CSV rows ({error})") from None
    if values.ndim != 2 or values.shape[1] != n_features or len(values) == 0:
        raise ImportProblem(f"{path}: expected rows of {n_features} numbers, got shape {values.shape}")
    return values


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    features = [f.strip() for f in args.features.split(",")] if args.features else None
    warnings.simplefilter("ignore")  # converters' noise; the one warning that matters is printed below
    if args.scaler is not None or args.source.suffix in (".pkl", ".pickle", ".joblib") or args.source.is_dir():
        print(f"warning: {UNPICKLING_WARNING}", file=sys.stderr)
    try:
        imported = load(args, features)
        rows = sample_rows(args.sample, imported.n_features)
        difference = max_difference(imported, rows)
        model = finish(imported, args.name, args.version, [float(v) for v in rows[0]])
    except ImportProblem as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if difference is not None and difference > TOLERANCE:
        print(
            f"error: the ONNX model differs from the original by {difference:.3g} on the sample rows", file=sys.stderr
        )
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, args.output)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    checked = (
        f"max difference from the original {difference:.3g} on {len(rows)} rows"
        if difference is not None
        else ("no original to compare with (an ONNX source)")
    )
    print(f"wrote {args.output}: {imported.n_features} features, {checked}")
    print(f"sha256 {digest}")
    print(f"pulumi config set --path 'mlserve:model.sha256' {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
