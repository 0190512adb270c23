"""`python -m serving batch`'s arguments, apart from the scoring code (and its numpy), so that the
command line can be built without importing what `serve` does not need."""

from __future__ import annotations

import argparse


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="CSV or Parquet file, local path or fsspec URL")
    parser.add_argument("--output", required=True, help="Where to write input columns + predictions")
    parser.add_argument("--model", help="ONNX file or directory (default: as for serve)")
    parser.add_argument("--method", choices=["predict", "predict_proba"], default="predict")
    parser.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="stop at the first bad row (default), or write bad rows to the errors file and go on",
    )
    parser.add_argument(
        "--errors", help="Errors file for --on-error skip (default: OUTPUT's name with .errors.csv, out.errors.csv)"
    )
    parser.add_argument("--chunk-rows", type=int, default=10_000, help="Rows scored at a time")
    parser.add_argument(
        "--format",
        choices=["auto", "csv", "parquet"],
        default="auto",
        help="Input and output format (default: by file extension)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Progress bar on stderr (default: when stderr is a terminal)",
    )
