"""The OpenAPI document: FastAPI's own for the routes it serves, plus the front's inference routes,
both from the route table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving import openapi_models
from serving.openapi_models import ErrorBody
from serving.routes import Route
from serving.runtime import ModelRuntime

_JSON_TYPES = {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}

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


def _model(name: str) -> type[BaseModel]:
    """A body model of the route table, by its name in serving/openapi_models.py."""
    model: type[BaseModel] = getattr(openapi_models, name)
    return model


def _content(bodies: dict[str, str | None]) -> dict[str, Any]:
    return {media: _ref(_model(name)) if name else {"schema": {"type": "string"}} for media, name in bodies.items()}


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


def column_schemas(runtime: ModelRuntime) -> dict[str, Any]:
    """A typed-column model's record (an object keyed by column) and row (values in its column order)."""
    properties: dict[str, Any] = {}
    for column in runtime.columns or ():
        schema: dict[str, Any] = {"type": _JSON_TYPES[column.kind], "description": f"{column.onnx_type} input"}
        if column.kind == "number":
            schema = {"type": ["number", "null"], "description": f"{column.onnx_type} input; null: missing"}
        if column.known:
            schema["enum"] = list(column.known)
        properties[column.name] = schema
    record = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    row = {
        "type": "array",
        "description": "Values in the model's column order: " + ", ".join(properties),
        "prefixItems": list(properties.values()),
        "minItems": len(properties),
        "maxItems": len(properties),
    }
    return {"ModelRecord": record, "ModelRow": row}


def _typed_body(operation: dict[str, Any]) -> None:
    """A typed-column model's /score and /invocations JSON bodies, by its columns."""
    rows = {
        "oneOf": [
            {"type": "array", "items": {"$ref": "#/components/schemas/ModelRow"}},
            {"type": "array", "items": {"$ref": "#/components/schemas/ModelRecord"}},
            {"$ref": "#/components/schemas/ModelRecord"},
        ]
    }
    method = {"type": "string", "enum": ["predict", "predict_proba"]}
    schema = {
        "type": "object",
        "description": "Rows in the model's column order or records by column name; /invocations also takes "
        "dataframe_split, dataframe_records, instances and inputs (columns by name)",
        "properties": {"data": rows, "instances": rows, "dataframe_records": rows, "method": method},
    }
    operation["requestBody"]["content"]["application/json"] = {"schema": schema}


def document(
    base: Callable[[], dict[str, Any]],
    routes: tuple[Route, ...],
    keys_enabled: bool,
    runtime: ModelRuntime | None = None,
) -> dict[str, Any]:
    """FastAPI's document (`base`), with the front's routes, the model's columns when it takes typed columns,
    and, when keys are on, the key scheme."""
    schema = base()
    models: set[type[BaseModel]] = {
        _model(m) for r in routes if r.infer for m in (*r.request.values(), *r.response.values()) if m is not None
    }
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(models | {ErrorBody}, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
    typed = runtime is not None and runtime.columns is not None
    if typed and runtime is not None:
        schema["components"]["schemas"].update(column_schemas(runtime))
    for route in routes:
        if route.infer is not None:
            schema["paths"][route.template] = {method.lower(): _operation(route) for method in route.methods}
            if typed and route.template in ("/score", "/invocations"):
                _typed_body(schema["paths"][route.template]["post"])
    if keys_enabled:
        schema["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
        keyed = {r.template for r in routes if not r.open}
        for path, item in schema["paths"].items():
            if path in keyed:
                for operation in item.values():
                    operation["security"] = [{"apiKey": []}]
                    operation["responses"].update(_errors(401))
    return schema
