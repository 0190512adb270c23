"""Every route the server answers, in one table.

From it come the front's lookup (which inference handler, with which path parameters), which paths
anyone may call without a key, the bounded metric labels, the FastAPI routes and the OpenAPI
document. Adding a route is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from serving import handlers
from serving.handlers import Handler

OPEN, KEYED = True, False  # callable without a key, or only with one
PROBE = ("GET", "HEAD")  # probes may use HEAD: the same answer without a body
TEXT = None  # a body documented as plain text (CSV)


@dataclass(frozen=True)
class Route:
    template: str  # `/v2/models/{name}/infer`: a `{...}` segment matches any one non-empty segment
    open: bool  # callable without a key: health probes, metrics, the API description
    summary: str
    tag: str
    methods: tuple[str, ...] = ("GET",)
    # Served by the front: the handler for the path's parameters. Else FastAPI serves `endpoint`
    # (a name in serving/endpoints.py), or FastAPI itself (its documentation pages) when both are None.
    infer: Callable[[dict[str, str]], Handler] | None = None
    endpoint: str | None = None
    # Media type -> the body's model, by its name in serving/openapi_models.py (pydantic, imported only for
    # the API document).
    request: dict[str, str | None] = field(default_factory=dict)
    response: dict[str, str | None] = field(default_factory=dict)
    headers: tuple[dict[str, object], ...] = ()  # OpenAPI header parameters
    errors: tuple[int, ...] = ()  # answers besides 200 (and 401 where keyed)

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.split("/"))


INFER_ERRORS = (400, 413, 503)
MODEL_ERRORS = (404, 503)


def _v2_infer(params: dict[str, str]) -> Handler:
    return handlers.v2_infer(params["name"], params.get("version"))


def v2_inference(template: str, summary: str) -> Route:
    """The Open Inference Protocol's infer route, of the model or of one of its versions."""
    return Route(
        template,
        KEYED,
        summary,
        "v2",
        ("POST",),
        infer=_v2_infer,
        request={"application/json": "InferRequest"},
        response={"application/json": "InferResponse"},
        errors=(*INFER_ERRORS, 404, 406, 415),
    )


ROUTES: tuple[Route, ...] = (
    # Inference, on the front.
    Route(
        "/score",
        KEYED,
        "Score rows (Azure ML style)",
        "azureml",
        ("POST",),
        infer=lambda _: handlers.score,
        request={"application/json": "ScoreRequest"},
        response={"application/json": "PredictionsResponse"},
        errors=(*INFER_ERRORS, 406, 415),
    ),
    Route(
        "/invocations",
        KEYED,
        "Score rows (SageMaker / MLflow)",
        "sagemaker",
        ("POST",),
        infer=lambda _: handlers.invocations,
        request={"application/json": "MlflowRequest", "text/csv": TEXT},
        response={"application/json": "PredictionsResponse", "text/csv": TEXT},
        headers=(
            {
                "name": "X-Amzn-SageMaker-Custom-Attributes",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "example": "method=predict_proba"},
            },
        ),
        errors=(*INFER_ERRORS, 406, 415),
    ),
    v2_inference("/v2/models/{name}/infer", "Infer (Open Inference Protocol)"),
    v2_inference("/v2/models/{name}/versions/{version}/infer", "Infer a version (Open Inference Protocol)"),
    # Health and metadata, on FastAPI.
    Route("/", OPEN, "Liveness (Azure ML convention)", "health", PROBE, endpoint="live"),
    Route(
        "/ping",
        OPEN,
        "SageMaker health check: 200 once the model is ready",
        "health",
        PROBE,
        endpoint="ready",
        errors=(503,),
    ),
    Route("/metrics", OPEN, "Prometheus metrics", "health", endpoint="metrics"),
    Route("/v2", OPEN, "Server metadata", "v2", PROBE, endpoint="server_metadata"),
    Route("/v2/health/live", OPEN, "Liveness", "v2", PROBE, endpoint="v2_live"),
    Route(
        "/v2/health/ready", OPEN, "Readiness: model loaded and warmed up", "v2", PROBE, endpoint="ready", errors=(503,)
    ),
    Route("/v2/models/{name}", KEYED, "Model metadata", "v2", endpoint="model_metadata", errors=MODEL_ERRORS),
    Route(
        "/v2/models/{name}/versions/{version}",
        KEYED,
        "Model metadata",
        "v2",
        endpoint="model_metadata",
        errors=MODEL_ERRORS,
    ),
    Route("/v2/models/{name}/ready", OPEN, "Model readiness", "v2", PROBE, endpoint="model_ready", errors=MODEL_ERRORS),
    Route(
        "/v2/models/{name}/versions/{version}/ready",
        OPEN,
        "Model readiness",
        "v2",
        PROBE,
        endpoint="model_ready",
        errors=MODEL_ERRORS,
    ),
    # The API description: FastAPI's pages, and the document under the name Azure ML clients look for.
    Route("/swagger.json", OPEN, "OpenAPI document (Azure ML name)", "docs", endpoint="swagger"),
    Route("/openapi.json", OPEN, "OpenAPI document", "docs"),
    Route("/docs", OPEN, "Swagger UI", "docs"),
    Route("/docs/oauth2-redirect", OPEN, "Swagger UI sign-in", "docs"),
    Route("/redoc", OPEN, "ReDoc", "docs"),
    Route("/docs/static/{file}", OPEN, "The pages' scripts and styles, served from the image", "docs"),
)


class RouteTable:
    """Path -> route and its parameters: a dict for fixed paths, segment matching for templates."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self.fixed = {r.template: r for r in routes if "{" not in r.template}
        # By segment count: a path is compared only with the templates it could match.
        self.templated: dict[int, list[Route]] = {}
        for route in routes:
            if "{" in route.template:
                self.templated.setdefault(len(route.segments), []).append(route)

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        route = self.fixed.get(path)
        if route is not None:
            return route, {}
        parts = path.split("/")
        for route in self.templated.get(len(parts), ()):
            segments = route.segments
            if all(
                part if segment[:1] == "{" else segment == part for segment, part in zip(segments, parts, strict=True)
            ):
                return route, {s[1:-1]: p for s, p in zip(segments, parts, strict=True) if s[:1] == "{"}
        return None

    def label(self, path: str) -> str:
        """A bounded set of metric labels: the route's template, or `other`."""
        found = self.match(path)
        return found[0].template if found else "other"

    def is_open(self, path: str) -> bool:
        found = self.match(path)
        return found is not None and found[0].open


TABLE = RouteTable(ROUTES)
