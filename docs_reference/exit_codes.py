"""Exit codes, from the ExitCode tables the commands return (serving/exit_codes.py and the scripts')."""

from __future__ import annotations

import importlib

from serving.exit_codes import Batch, Drift, ExitCode, Import, Serve


def _script(module: str, name: str) -> type[ExitCode]:
    table: type[ExitCode] = getattr(importlib.import_module(f"scripts.{module}"), name)
    return table


def commands() -> dict[str, type[ExitCode]]:
    """Each command line as typed, with its table."""
    return {
        "python -m serving serve": Serve,
        "python -m serving batch": Batch,
        "python -m serving drift": Drift,
        "python -m importer": Import,
        "python scripts/stack_drift.py": _script("stack_drift", "StackDrift"),
        "python scripts/audit.py": _script("audit", "Audit"),
    }


def table(codes: type[ExitCode]) -> str:
    rows = [f"| {int(code)} | {code.meaning} |" for code in codes]
    return "\n".join(["| Exit code | Meaning |", "| --- | --- |", *rows]) + "\n"


def serve() -> str:
    return table(Serve)


def drift() -> str:
    return table(Drift)


def reference() -> str:
    return "\n".join(f"### `{command}`\n\n{table(codes)}" for command, codes in commands().items())
