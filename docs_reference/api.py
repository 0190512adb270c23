"""The HTTP API, from the route table (`serving/routes.py`): every route, who may call it, what it takes and
what it answers."""

from __future__ import annotations

from docs_reference.tables import table
from serving.openapi import ERROR_TEXTS
from serving.routes import ROUTES, Route


def _answers(route: Route) -> str:
    codes = sorted({200, *route.errors, *(() if route.open else (401,))})
    return ", ".join(f"{code}" + (f" ({ERROR_TEXTS[code]})" if code in ERROR_TEXTS else "") for code in codes)


def reference() -> str:
    rows = [
        (
            " ".join(f"`{m}`" for m in route.methods),
            f"`{route.template}`",
            "open" if route.open else "key or token",
            route.summary,
            ", ".join(f"`{media}`" for media in route.request) or "—",
            ", ".join(f"`{media}`" for media in route.response) or "—",
            _answers(route),
        )
        for route in ROUTES
    ]
    return table(("Method", "Path", "Access", "What", "Takes", "Answers in", "Status codes"), rows)
