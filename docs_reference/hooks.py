"""MkDocs hook (mkdocs.yml `hooks:`): a page's `<!-- reference: NAME -->` line becomes the generated reference."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # mkdocs loads this file by path; the generators import the repository's packages
    sys.path.insert(0, str(REPO))

from docs_reference import api, cli, errors, exit_codes, outputs, server, stack  # noqa: E402

GENERATORS: dict[str, Callable[[], str]] = {
    "stack-settings": stack.reference,
    "server-settings": server.reference,
    "http-api": api.reference,
    "error-codes": errors.reference,
    "command-lines": cli.reference,
    "exit-codes": exit_codes.reference,
    "serve-exit-codes": exit_codes.serve,
    "drift-exit-codes": exit_codes.drift,
    "stack-outputs": outputs.reference,
}
MARKER = re.compile(r"^<!-- reference: ([a-z-]+) -->$", re.MULTILINE)
_made: dict[str, str] = {}


def _generated(match: re.Match[str]) -> str:
    name = match.group(1)
    if name not in GENERATORS:
        raise ValueError(f"no generated reference named {name!r}; known: {', '.join(GENERATORS)}")
    if name not in _made:
        _made[name] = GENERATORS[name]()
    return _made[name]


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARKER.sub(_generated, markdown)
