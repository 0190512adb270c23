"""`/docs` and `/redoc` render in a browser with no network: their scripts come from the server itself
(headless Chromium, every host but loopback unresolvable)."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from tests.serving.server import RunningServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def rendered(url: str) -> str:
    """The page's DOM once its scripts have run, as headless Chromium sees it without internet."""
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",  # tests may run as root
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


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
