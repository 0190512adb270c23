"""FastAPI, behind the front: the API's pages (`/docs`, `/redoc`), its document (`/openapi.json`,
`/swagger.json`), and whatever the front hands on (an unknown path, another method, a query string).

Built on the first such request (serving/app.py), in each worker: a worker that is only probed,
scraped and asked to score never imports FastAPI.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving import __version__
from serving.api_pages import add_api_pages
from serving.endpoints import endpoints
from serving.errors import RequestError
from serving.front import InferenceFront
from serving.openapi import document
from serving.openapi_models import ErrorBody
from serving.routes import ROUTES


def _error_response(error: RequestError) -> JSONResponse:
    headers = {k.decode(): v.decode() for k, v in error.headers()}
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def build_api(front: InferenceFront) -> FastAPI:
    """The FastAPI app for `front`'s fallback: the route table's FastAPI rows and the API's pages."""
    state = front.state
    api = FastAPI(
        title="mlserve",
        redirect_slashes=False,  # the front redirects, relatively
        version=__version__,
        description="One ONNX model behind Azure ML, SageMaker and Open Inference Protocol routes.",
        docs_url=None,
        redoc_url=None,
    )
    add_api_pages(api, api.title)
    _error_handlers(api)
    base_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        # Kept once the model is loaded: its columns are part of the document.
        made = document(base_openapi, ROUTES, front.keys.enabled, state.runtime)
        api.openapi_schema = made if state.runtime is not None else None
        return made

    api.openapi = openapi  # type: ignore[method-assign]
    served = endpoints(state, front.metrics, front.settle, openapi)
    for route in ROUTES:
        if route.endpoint is not None:
            function, options = served[route.endpoint]
            for method in route.methods:
                api.add_api_route(
                    route.template,
                    function,
                    methods=[method],
                    tags=[route.tag],
                    summary=route.summary,
                    operation_id=f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', route.template).rstrip('_')}",
                    **{
                        "responses": {code: {"model": ErrorBody} for code in route.errors},
                        **options,
                        # HEAD is GET without the body: one operation in the document is enough.
                        **({"include_in_schema": False} if method == "HEAD" else {}),
                    },
                )
    return api


def _error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError) -> JSONResponse:
        return _error_response(error)

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail), "code": "http_error"},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"error": f"{where}: {first['msg']}", "code": "invalid_input"}, status_code=400)
