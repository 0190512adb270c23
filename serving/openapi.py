"""The OpenAPI document: FastAPI's own for the routes it serves, plus the front's inference routes,
both from the route table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.openapi_models import ErrorBody
from serving.routes import Route

ERROR_TEXTS = {
    400: "Invalid input",
    401: "Missing or wrong API key",
    404: "Unknown model or version",
    405: "Method not allowed",
    406: "Cannot answer in the accepted media type",
    413: "Body too large",
    415: "Unsupported content type",
    503: "Not ready",
}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


def _content(bodies: dict[str, type[BaseModel] | None]) -> dict[str, Any]:
    return {media: _ref(model) if model else {"schema": {"type": "string"}} for media, model in bodies.items()}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": ERROR_TEXTS[code], "content": {"application/json": _ref(ErrorBody)}}
        for code in codes
    }


def _operation(route: Route) -> dict[str, Any]:
    params = [
        {"name": segment[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for segment in route.segments
        if segment[:1] == "{"
    ]
    return {
        "tags": [route.tag],
        "summary": route.summary,
        "parameters": [*params, *route.headers],
        "requestBody": {"required": True, "content": _content(route.request)},
        "responses": {
            "200": {"description": "Predictions", "content": _content(route.response)},
            **_errors(*route.errors),
        },
    }


def document(base: Callable[[], dict[str, Any]], routes: tuple[Route, ...], keys_enabled: bool) -> dict[str, Any]:
    """FastAPI's document (`base`), with the front's routes and, when keys are on, the key scheme."""
    schema = base()
    models: set[type[BaseModel]] = {
        m for r in routes if r.infer for m in (*r.request.values(), *r.response.values()) if m is not None
    }
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(models | {ErrorBody}, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
    for route in routes:
        if route.infer is not None:
            schema["paths"][route.template] = {method.lower(): _operation(route) for method in route.methods}
    if keys_enabled:
        schema["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
        keyed = {r.template for r in routes if not r.open}
        for path, item in schema["paths"].items():
            if path in keyed:
                for operation in item.values():
                    operation["security"] = [{"apiKey": []}]
                    operation["responses"].update(_errors(401))
    return schema
