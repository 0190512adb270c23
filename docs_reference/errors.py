"""The error codes, from the error hierarchy (`serving/errors.py`): each class's code, status and docstring."""

from __future__ import annotations

import inspect

from docs_reference.tables import table
from serving import errors


def _classes() -> list[type[errors.RequestError]]:
    found = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.RequestError)]
    return sorted(found, key=lambda c: (c.status, c.code))


def reference() -> str:
    rows = [(f"`{c.code}`", c.status, " ".join((inspect.getdoc(c) or "").split())) for c in _classes()]
    return table(("Code", "Status", "When"), rows)
