"""Markdown tables and values as the reference pages show them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(text: object) -> str:
    """One table cell: on one line, `|` escaped, `<name>` outside code shown as written rather than read as HTML."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("&", "&amp;").replace("<", "&lt;") for i, p in enumerate(parts))


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def code(value: Any) -> str:
    """A value as code: `true`, `[]`, `"1Gi"` read as they are written in a stack file or an environment."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (tuple, list)):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return f"`{text}`"


def number(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{int(value):,}"
