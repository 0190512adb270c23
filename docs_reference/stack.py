"""Every `mlserve:` stack setting, from the pydantic models in `stacks/config.py`: key, type, default, bounds
and the description written on the field."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from docs_reference.tables import code, number, table
from stacks.config import NAMESPACE, Matching, Section, StackConfig, Within


def _checks(annotation: Any, metadata: list[Any]) -> list[Any]:
    """The validators on a field and on the types it is built from."""
    found = [getattr(m, "func", m) for m in metadata]
    for arg in typing.get_args(annotation):
        found += [getattr(m, "func", m) for m in getattr(arg, "__metadata__", ())]
        found += _checks(arg, [])
    return found


def _type_words(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _type_words(args[0])
    if origin in (typing.Union, types.UnionType):
        return _type_words(args[0])
    if origin is Literal:
        choices = [f"`{a}`" for a in typing.get_args(annotation)]
        return ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
    if origin is tuple:
        return f"list of {_type_words(args[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    words = {bool: "bool", int: "int", float: "number", str: "string", Path: "path", SecretStr: "secret text"}
    return words.get(annotation, getattr(annotation, "__name__", str(annotation)))


def describe_type(info: FieldInfo) -> str:
    """`int 1..256`, `a DNS name such as rain.example.com`, `list of string`."""
    words = _type_words(info.annotation)
    checks = _checks(info.annotation, list(info.metadata))
    pattern = next((c for c in checks if isinstance(c, Matching)), None)
    if pattern is not None:
        words = f"list of {pattern.words}" if words.startswith("list of") else pattern.words
    bounds = next((c for c in checks if isinstance(c, Within)), None)
    if bounds is not None:
        words += f" {number(bounds.low)}..{number(bounds.high)}"
    return words


def _nested(info: FieldInfo) -> type[Section] | None:
    for candidate in (info.annotation, *typing.get_args(info.annotation)):
        inner = typing.get_args(candidate)[0] if typing.get_origin(candidate) is tuple else candidate
        if isinstance(inner, type) and issubclass(inner, Section):
            return inner
    return None


def _effective(model: type[Section], protect: bool) -> dict[str, Any]:
    """Defaults a section's own rules fill in (e.g. `minCapacity` from `instanceCount`), where it validates empty."""
    try:
        return dict(model.model_validate({}, context={"stack": "STACK", "protect": protect}))
    except ValidationError:
        return {}


def _default(model: type[Section], name: str, info: FieldInfo) -> str:
    if info.is_required():
        plain, protected = _effective(model, False).get(name), _effective(model, True).get(name)
        if plain is None:
            return "see description" if _fills(model, name) else "**required**"
        shown = code(plain).replace("STACK", "<stack>")
        return shown + ("" if protected == plain else f", protected: {code(protected)}")
    if info.default is None or info.default is PydanticUndefined:
        return "none"
    if isinstance(info.default, BaseModel):
        return "—"
    return code(info.default)


def _fills(model: type[Section], name: str) -> bool:
    """Whether the section fills the field itself when it is left out (a rule that depends on other settings)."""
    try:
        model.model_validate({}, context={"stack": "STACK", "protect": False})
    except ValidationError as error:
        return not any(e["type"] == "missing" and e["loc"] == (model.model_fields[name].alias,) for e in error.errors())
    return True


def rows(model: type[Section], prefix: str) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of every setting in `model`, nested sections flattened."""
    found: list[tuple[str, str, str, str]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        nested = _nested(info)
        if nested is not None and typing.get_origin(info.annotation) is tuple:
            found.append((f"`{key}`", "list of objects", _default(model, name, info), info.description or ""))
            found += rows(nested, f"{key}[].")
        elif nested is not None:
            found += rows(nested, f"{key}.")
        else:
            found.append((f"`{key}`", describe_type(info), _default(model, name, info), info.description or ""))
    return found


def reference() -> str:
    """The settings, one table per section, in the order of `StackConfig`."""
    header = ("Key", "Type", "Default", "What it does")
    top = [
        (
            f"`{NAMESPACE}:{info.alias or name}`",
            describe_type(info),
            _default(StackConfig, name, info),
            info.description,
        )
        for name, info in StackConfig.model_fields.items()
        if _nested(info) is None
    ]
    parts = [table(header, top)]
    for name, info in StackConfig.model_fields.items():
        section = _nested(info)
        if section is None:
            continue
        key = f"{NAMESPACE}:{info.alias or name}"
        parts.append(f"### `{key}`\n\n{info.description or ''}\n\n" + table(header, rows(section, f"{key}.")))
    return "\n".join(parts)
