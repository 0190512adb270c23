"""The API's pages, `/docs` (Swagger UI) and `/redoc`, with their scripts and styles served from the
image (the pinned fastapi-offline package ships them) instead of a public CDN: the pages work in a
private network, without internet and behind a content-security policy, and no third-party script
runs in front of an authenticated API."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/static"  # a route table row (serving/routes.py) opens it to callers without a key


def add_api_pages(api: FastAPI, title: str) -> None:
    """Serve the pages on `api`, created with `docs_url=None, redoc_url=None`."""
    openapi_url = api.openapi_url or "/openapi.json"
    api.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="api-page-assets")

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    for path, page in (("/docs", swagger_ui), ("/docs/oauth2-redirect", oauth2_redirect), ("/redoc", redoc)):
        api.add_api_route(path, page, methods=["GET"], include_in_schema=False)
