"""`python -m serving drift`'s arguments, without importing the report's libraries (so that the server's
command line stays light)."""

from __future__ import annotations

import argparse
import sys

from serving.drift.problems import missing_library
from serving.exit_codes import Drift


def run(args: argparse.Namespace) -> int:
    """Run the report; without its libraries (the serving image), say how to install them."""
    try:
        from serving.drift.run import run_drift
    except ImportError as error:
        print(f"error: {missing_library(error)}", file=sys.stderr)
        return Drift.BAD_INPUT
    return run_drift(args)


def add_drift_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        required=True,
        help="captured records: a directory, s3://bucket/prefix, az://container/prefix (with --connection-string "
        "or --account-url) or https://ACCOUNT.blob.core.windows.net/container/prefix; the prefix down to the "
        "endpoint (variants and versions below it are all read) or to one variant",
    )
    parser.add_argument("--model", help="ONNX file or directory with the baseline (default: as for serve)")
    parser.add_argument("--days", type=float, help="the period: the last DAYS days up to --until (default 7)")
    parser.add_argument("--since", help="start of the period, UTC: 2026-12-01 or 2026-12-01T06:00")
    parser.add_argument("--until", help="end of the period (excluded), UTC (default: now)")
    parser.add_argument(
        "--baseline-rows",
        help="CSV rows (header optional) to derive the baseline from, for a model imported without one",
    )
    parser.add_argument("--output-dir", default="drift-report", help="where report.html and summary.json go")
    parser.add_argument("--markdown", help="also append the summary as a Markdown table to this file")
    parser.add_argument(
        "--numeric-threshold",
        type=float,
        default=0.1,
        help="drift when the Wasserstein distance of a number column, in baseline standard deviations, "
        "exceeds this (default 0.1)",
    )
    parser.add_argument(
        "--category-threshold",
        type=float,
        default=0.2,
        help="drift when the population stability index of a category column exceeds this (default 0.2)",
    )
    parser.add_argument(
        "--min-rows", type=int, default=100, help="fewer captured rows than this is an error (default 100)"
    )
    parser.add_argument("--endpoint-url", help="S3 endpoint URL (an S3-compatible store or a local stand-in)")
    parser.add_argument(
        "--connection-string",
        help="Azure storage connection string (default: $AZURE_STORAGE_CONNECTION_STRING; without one, "
        "DefaultAzureCredential signs in)",
    )
    parser.add_argument("--account-url", help="Azure blob account URL for az:// sources")
