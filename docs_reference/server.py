"""Every server setting, from `serving.settings.Settings`: variable, flag, type, default, bounds, description."""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Gt, Le, MinLen
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from docs_reference.stack import describe_type
from docs_reference.tables import code, number, table
from serving.flags import SERVE_FLAGS, flag
from serving.settings import Settings


def variables(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return ", ".join(f"`{choice}`" for choice in alias.choices)
    return f"`SERVING_{name.upper()}`"


def bounds(info: FieldInfo) -> str:
    found = []
    for item in info.metadata:
        if isinstance(item, Ge):
            found.append(f"≥ {number(item.ge)}")  # type: ignore[arg-type]
        elif isinstance(item, Gt):
            found.append(f"> {number(item.gt)}")  # type: ignore[arg-type]
        elif isinstance(item, Le):
            found.append(f"≤ {number(item.le)}")  # type: ignore[arg-type]
        elif isinstance(item, MinLen):
            found.append(f"at least {item.min_length} character(s)")
    return ", ".join(found)


def default(info: FieldInfo) -> str:
    value: Any = info.default
    if info.default_factory is not None:
        return "see description"
    if value is None or value is PydanticUndefined:
        return "unset"
    if value == ():
        return "empty"
    return code(value)


def reference() -> str:
    rows = [
        (
            variables(name, info),
            code(flag(name)) if name in SERVE_FLAGS else "",
            " ".join(filter(None, (describe_type(info).replace("string", "text"), bounds(info)))),
            default(info),
            info.description or "",
        )
        for name, info in Settings.model_fields.items()
    ]
    return table(("Variable", "Flag", "Type", "Default", "What it does"), rows)
