"""The route table, in process (httpx's ASGI transport against `create_app`): every row is served, open or
keyed as it says, labelled by its template and documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from serving.app import create_app, load_runtime
from serving.front import InferenceFront
from serving.routes import ROUTES, TABLE
from serving.settings import Settings

KEY = "k" * 32
ROW = {"data": [[12.0, 0.8, 10.0, 1010.0, 3.0, 60.0, 2.0]]}


@pytest.fixture(scope="module")
def app() -> Iterator[InferenceFront]:
    settings = Settings(api_keys=(SecretStr(KEY),), access_log=False, workers=1)
    front = create_app(settings, load_runtime(settings))
    yield front
    front.pool.shutdown()


def call(app: InferenceFront, method: str, path: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    # A loop of its own: asyncio.run would leave the thread without a current loop, which the Pulumi
    # tests sharing this process rely on.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(go())
    finally:
        loop.close()


def concrete(template: str, name: str) -> str:
    return template.replace("{name}", name).replace("{version}", "1")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.template)
def test_every_route_in_the_table_is_served_open_or_keyed_as_it_says(app: InferenceFront, route) -> None:
    assert app.state.runtime is not None
    path = concrete(route.template, app.state.runtime.name)
    method = route.methods[0]
    body = (
        {"json": ROW}
        if "/v2/" not in path
        else {"json": {"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": ROW["data"][0]}]}}
    )
    anonymous = call(app, method, path, **(body if method == "POST" else {}))
    keyed = call(app, method, path, headers={"authorization": f"Bearer {KEY}"}, **(body if method == "POST" else {}))
    if route.open:
        assert anonymous.status_code == 200, (path, anonymous.text)
    else:
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert keyed.status_code == 200, (path, keyed.text)


def test_metric_labels_are_the_templates_and_unknown_paths_are_other(app: InferenceFront) -> None:
    name = app.state.runtime.name  # type: ignore[union-attr]
    assert TABLE.label(f"/v2/models/{name}/versions/7/infer") == "/v2/models/{name}/versions/{version}/infer"
    assert TABLE.label("/v2/models//infer") == "other"
    assert TABLE.label("/wp-login.php") == "other"
    call(app, "GET", "/wp-login.php", headers={"authorization": f"Bearer {KEY}"})
    call(app, "POST", f"/v2/models/{name}/infer", headers={"authorization": f"Bearer {KEY}"}, json={"inputs": []})
    exposition = call(app, "GET", "/metrics").text
    assert 'mlserve_requests_total{route="other",status="404"}' in exposition
    assert 'route="/v2/models/{name}/infer",status="400"' in exposition


def test_head_on_a_probe_answers_without_a_body(app: InferenceFront) -> None:
    for route in ROUTES:
        if "HEAD" in route.methods:
            answer = call(app, "HEAD", route.template)
            assert (answer.status_code, answer.content) == (200, b""), route.template


def test_the_openapi_document_describes_every_documented_route_with_its_parameters(app: InferenceFront) -> None:
    document = call(app, "GET", "/openapi.json").json()
    assert call(app, "GET", "/swagger.json").json() == document
    for route in ROUTES:
        if route.infer is None and route.endpoint in (None, "swagger"):
            continue
        operations = document["paths"][route.template]
        for method in route.methods:
            if method == "HEAD":
                continue
            operation = operations[method.lower()]
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == {s[1:-1] for s in route.segments if s.startswith("{")}, route.template
            assert ("security" in operation) is (not route.open), route.template
            for code in route.errors:
                assert str(code) in operation["responses"], (route.template, code)
