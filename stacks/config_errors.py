"""Pydantic's validation errors as one line per problem, in the words of the stack file.

`mlserve:sagemaker.memorySizeMB in Pulumi.dev.yaml: unknown setting; did you mean memorySizeMb?`
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class Invalid(ValueError):
    """A rule across settings, raised by a model validator; `key` (relative to that model) is what to change."""

    def __init__(self, key: str, message: str, *more: tuple[str, str]) -> None:
        super().__init__(message)
        self.key = key
        self.more = more  # further (key, message) pairs found by the same rule


# Keys that were settings once: what to do instead.
RETIRED: dict[tuple[str, ...], str] = {
    ("model", "directory"): "renamed: set mlserve:model.source (a path, https://, s3://, az:// or models:/)",
    ("kubernetes", "serviceType"): (
        "no longer a setting: the serving Service is internal (ClusterIP) and clients reach it over HTTPS "
        "through the Istio gateway (aks.domain); remove the key"
    ),
}

_WORDS = {
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected text",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "model_type": "expected an object of settings",
    "dict_type": "expected an object of settings",
    "model_attributes_type": "expected an object of settings",
}


def key_path(namespace: str, loc: tuple[str | int, ...]) -> str:
    """('aks', 'admins', 0, 'objectId') -> mlserve:aks.admins[0].objectId"""
    text = namespace + ":"
    for index, part in enumerate(loc):
        text += f"[{part}]" if isinstance(part, int) else (part if index == 0 else f".{part}")
    return text


def problems(error: ValidationError, root: type[BaseModel], namespace: str, stack_file: str) -> list[str]:
    """One line per error: the full key, the stack file, what is wrong and, where it can be said, the fix."""
    lines = []
    for item in error.errors():
        loc: tuple[str | int, ...] = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, Invalid):
            for key, message in ((cause.key, str(cause)), *cause.more):
                lines.append(f"{key_path(namespace, (*loc, *key.split('.')))} in {stack_file}: {message}")
            continue
        lines.append(f"{key_path(namespace, loc)} in {stack_file}: {_describe(item, loc, root, cause)}")
    return list(dict.fromkeys(lines))


def _describe(item: Any, loc: tuple[str | int, ...], root: type[BaseModel], cause: object) -> str:
    kind = item["type"]
    given = item.get("input")
    named = tuple(p for p in loc if isinstance(p, str))
    if kind == "extra_forbidden":
        if named in RETIRED:
            return RETIRED[named]
        parent = _model_at(root, loc[:-1])
        known = sorted(_aliases(parent)) if parent else []
        noun = "key" if len(loc) == 1 else "setting"
        guess = difflib.get_close_matches(str(loc[-1]).lower(), [k.lower() for k in known], n=1, cutoff=0.75)
        if guess:
            return f"unknown {noun}; did you mean {next(k for k in known if k.lower() == guess[0])}?"
        return f"unknown {noun}; known: {', '.join(known)}"
    if kind == "missing" or (kind == "too_short" and not given):
        description = _description(root, loc)
        return f"required: {description}" if description else "required"
    if isinstance(cause, ValueError):
        return str(cause)
    if kind == "literal_error":
        return f"{given!r}; choose from {item['ctx']['expected']}"
    if kind in _WORDS:
        return f"{_WORDS[kind]}, got {given!r}"
    return str(item["msg"])


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """alias -> field name"""
    return {(field.alias or name): name for name, field in model.model_fields.items()}


def _model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        name = _aliases(model).get(part)
        if name is None:
            return None
        found = _models_in(model.model_fields[name].annotation)
        model = found[0] if found else None
    return model


def _description(root: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    parent = _model_at(root, loc[:-1])
    if parent is None or not isinstance(loc[-1], str):
        return None
    name = _aliases(parent).get(loc[-1])
    description = parent.model_fields[name].description if name else None
    return " ".join(description.split()) if description else None
