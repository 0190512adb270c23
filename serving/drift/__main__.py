"""`python -m serving.drift`: the same command as `python -m serving drift`."""

from __future__ import annotations

import argparse
import sys

from serving.drift.cli import add_drift_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving drift", description="Drift report of captured requests")
    add_drift_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
