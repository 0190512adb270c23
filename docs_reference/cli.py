"""The command lines, from their argument parsers: each one's `--help`, as it prints it."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable


def help_text(main: Callable[[list[str]], object], argv: list[str]) -> str:
    """What `main(argv + ["--help"])` prints: argparse writes the help and exits."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


def _serving(argv: list[str]) -> object:
    from serving.__main__ import main

    return main(argv)


def _importer(argv: list[str]) -> object:
    from importer.__main__ import main

    return main(argv)


def _plan(argv: list[str]) -> object:
    from offline.plan import main

    return main(argv)


def _script(name: str) -> Callable[[list[str]], object]:
    def run(argv: list[str]) -> object:
        import importlib

        return importlib.import_module(f"scripts.{name}").main(argv)

    return run


# (the command as typed, its main function, the arguments before --help)
COMMANDS: dict[str, tuple[Callable[[list[str]], object], list[str]]] = {
    "python -m serving serve": (_serving, ["serve"]),
    "python -m serving batch": (_serving, ["batch"]),
    "python -m serving drift": (_serving, ["drift"]),
    "python -m importer": (_importer, []),
    "python -m offline.plan": (_plan, []),
    "python scripts/release_model.py record": (_script("release_model"), ["record"]),
    "python scripts/release_model.py newest": (_script("release_model"), ["newest"]),
    "python scripts/audit.py": (_script("audit"), []),
    "python scripts/stale_pins.py": (_script("stale_pins"), []),
    "python scripts/stack_drift.py": (_script("stack_drift"), []),
}


def reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: the same page on every machine
    parts = []
    for command, (main, argv) in COMMANDS.items():
        parts.append(f"### `{command}`\n\n```text\n{help_text(main, argv).rstrip()}\n```\n")
    return "\n".join(parts)
