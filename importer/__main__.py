"""python -m importer: make the server's ONNX model from a scikit-learn, XGBoost or LightGBM model (pickle,
skops, booster file), an MLflow model (directory or models:/ URI), an Azure ML SDK v1 scaler + ONNX pair or an
ONNX file; check it against the original on your rows; print the check and its sha256.

    python -m importer model.pkl -o model.onnx --name churn --version 3 --sample rows.csv
    python -m importer svc.onnx --scaler scaler.pkl -o model.onnx --name weather-rain --version 2
    python -m importer models:/churn@champion -o model.onnx --name churn --version 3

Exit codes: 0 done, 2 bad arguments or a model that cannot be imported (the message names the step and
what to do).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a path (python path/to/importer ...) from any directory
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import json
import re
import warnings

import onnx

from importer.baseline import baseline
from importer.check import ATOL, RTOL, OutputCheck, compare, run_onnx, table
from importer.convert import Imported, convert, finish, merge_scaler
from importer.problems import ImportProblem, first_line
from importer.rows import Rows, from_csv, from_example, made_up
from importer.sources import PICKLES, UNPICKLING_WARNING, Loaded, load, load_pickle
from serving.exit_codes import Import

# The stack's rule for mlserve:model.name (stacks/config.py NAME): the name must pass it there too.
NAME = r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?"


def parser() -> argparse.ArgumentParser:
    summary = " ".join((__doc__ or "").split("\n\n")[0].split())
    p = argparse.ArgumentParser(prog="python -m importer", description=summary)
    p.add_argument("source", help="a .pkl/.joblib/.skops model, an XGBoost .ubj/.xgb or LightGBM .txt booster, an "
                   ".onnx file, an MLflow model directory or models:/name/version, models:/name@alias")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the ONNX model")
    p.add_argument("--name", required=True, help="model name the endpoint reports (lowercase, digits, -)")
    p.add_argument("--version", required=True, help="model version the endpoint reports")
    p.add_argument(
        "--scaler", type=Path, help="a fitted scaler (.pkl) applied before SOURCE (.onnx): an Azure ML SDK v1 pair"
    )
    p.add_argument("--features", help="comma-separated feature names, when the model does not carry them")
    p.add_argument("--sample", type=Path, help="CSV rows of your data (header optional): they decide the check")
    p.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance of values (default {RTOL:g})")
    p.add_argument("--atol", type=float, default=ATOL, help=f"absolute tolerance of values (default {ATOL:g})")
    p.add_argument("--accept-differences", action="store_true",
                   help="write the model even when rows differ from the original (the check still prints)")  # fmt: skip
    p.add_argument("--trust", default="", help="comma-separated types to trust in a skops file")
    return p


def loaded_model(args: argparse.Namespace, features: list[str] | None) -> tuple[Loaded | None, Imported]:
    trust = [t.strip() for t in args.trust.split(",") if t.strip()]
    if args.scaler is not None:
        if not args.source.endswith(".onnx"):
            raise ImportProblem("--scaler goes with an .onnx SOURCE (the model that follows the scaler)")
        if not Path(args.source).is_file():
            raise ImportProblem(f"{args.source}: no such file")
        if not args.scaler.is_file():
            raise ImportProblem(f"--scaler {args.scaler}: no such file")
        scaler, notes = load_pickle(args.scaler)
        imported = merge_scaler(scaler, Path(args.source), features)
        imported.notes = notes
        return None, imported
    loaded = load(args.source, trust)
    return loaded, convert(loaded, features)


def user_rows(args: argparse.Namespace, loaded: Loaded | None, imported: Imported) -> Rows:
    if args.sample is not None:
        return from_csv(args.sample, imported.n_features, imported.feature_names, imported.text_columns)
    if loaded is not None and loaded.example is not None:
        return from_example(loaded.example, imported.n_features, imported.feature_names, imported.text_columns)
    return made_up(imported.n_features, imported.feature_names, imported.text_columns)


def verdict(checks: list[OutputCheck], imported: Imported) -> str | None:
    """The refusal, or None: your rows decide; made-up rows only warn."""
    off = [c for c in checks if c.off]
    if not off:
        return None
    worst = ", ".join(
        f"{c.off} of {c.rows} rows of {c.name}" + ("" if c.labels else f" (max abs {c.max_abs:.3g})") for c in off
    )
    why = ""
    # A double graph is served in float64 (the server parses straight into the input's type), so only a
    # float32 graph's trees have this excuse.
    if not imported.double and any(n.op_type.startswith("TreeEnsemble") for n in imported.model.graph.node):
        why = "; rows close to a tree's threshold take the other branch in float32 (the graph computes in float32)"
    return f"{worst} differ from the original{why}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    features = [f.strip() for f in args.features.split(",")] if args.features else None
    if not re.fullmatch(NAME, args.name):
        print(f"error: --name {args.name!r}: lowercase letters, digits and '-' (at most 42), as the stack requires",
              file=sys.stderr)  # fmt: skip
        return Import.REFUSED
    source = args.source
    if args.scaler is not None or source.endswith(PICKLES):  # MLflow's pickles say so when they are loaded
        print(f"warning: {UNPICKLING_WARNING}", file=sys.stderr)
    warnings.simplefilter("ignore")  # converters' noise; version skew is collected where models are loaded
    try:
        loaded, imported = loaded_model(args, features)
        for note in imported.notes:
            print(f"warning: {note}", file=sys.stderr)
        rows = user_rows(args, loaded, imported)
        checks = compare(imported, rows.frame, args.rtol, args.atol) if imported.reference is not None else []
        refusal = verdict(checks, imported)
        extra = {}
        if rows.yours:
            labels = run_onnx(imported.model, rows.frame.to_numpy())[0]  # as the server will answer
            extra = {"sample_input": json.dumps(rows.frame.iloc[0].tolist()), "baseline": baseline(rows.frame, labels)}
        model = finish(imported, args.name, args.version, extra)
    except ImportProblem as problem:
        print(f"error: {problem}", file=sys.stderr)
        return Import.REFUSED
    except Exception as error:  # a library failing in a way the steps do not foresee: still one line
        first = first_line(error)
        print(f"error: {type(error).__name__}: {first} (unforeseen: please report it with the command)",
              file=sys.stderr)  # fmt: skip
        return Import.REFUSED
    if checks:
        print(f"check on {rows.origin}: labels equal on every row, values within {args.atol:g} + {args.rtol:g} x "
              "|original| (the ONNX model reads the rows as the server does, in its input's float type)")  # fmt: skip
        print(table(checks))
    else:
        print("check: no original to compare with (an ONNX source)")
    if refusal is not None and rows.yours and not args.accept_differences:
        print(f"error: check: {refusal}; pass --accept-differences to import it anyway, or widen --rtol/--atol",
              file=sys.stderr)  # fmt: skip
        return Import.REFUSED
    if refusal is not None:
        print(f"warning: check: {refusal}", file=sys.stderr)
    if checks and not rows.yours:
        print("warning: a weak check: made-up rows, not your data; pass --sample rows.csv (your rows decide)",
              file=sys.stderr)  # fmt: skip
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(model, args.output)
        digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    except OSError as error:
        print(f"error: write: {args.output}: {error.strerror or error}", file=sys.stderr)
        return Import.REFUSED
    print(f"wrote {args.output}: {imported.n_features} features" +
          ("" if rows.yours else "; no sample_input or baseline (no rows of yours)"))  # fmt: skip
    print(f"sha256 {digest}")
    print(f"pulumi config set --path 'mlserve:model.sha256' {digest}")
    return Import.WROTE


if __name__ == "__main__":
    sys.exit(main())
