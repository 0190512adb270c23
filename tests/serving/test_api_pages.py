"""`/docs` and `/redoc` render in a browser with no network: their scripts come from the server itself
(headless Chromium, every host but loopback unresolvable)."""

from __future__ import annotations

import httpx

from tests.chromium import needs_chromium, rendered
from tests.serving.server import RunningServer

pytestmark = needs_chromium


def test_swagger_ui_shows_the_operations_without_a_network(server: RunningServer) -> None:
    page = httpx.get(server.url + "/docs").text
    assert "cdn" not in page.lower(), "no script or style from a CDN"
    dom = rendered(server.url + "/docs")
    assert 'class="opblock' in dom, dom[:2000]
    for operation in ("/score", "/invocations", "/v2/models/{name}/infer"):
        assert operation in dom


def test_redoc_shows_the_operations_without_a_network(server: RunningServer) -> None:
    dom = rendered(server.url + "/redoc")
    assert "Score rows (Azure ML style)" in dom, dom[:2000]


def test_the_pages_assets_need_no_key(server: RunningServer) -> None:
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = httpx.get(f"{server.url}/docs/static/{asset}")
        assert response.status_code == 200, asset
    assert httpx.get(server.url + "/docs/static/missing.js").status_code == 404
