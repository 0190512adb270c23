"""The route table, in process (the `client` fixture: `create_app` through starlette's TestClient): every row
is served, open or keyed as it says, labelled by its template and documented."""

from __future__ import annotations

import httpx
import pytest

from serving.front import InferenceFront
from serving.routes import ROUTES, TABLE
from tests.conftest import PRIMARY_KEY, send

ROW = {"data": [[12.0, 0.8, 10.0, 1010.0, 3.0, 60.0, 2.0]]}
KEYED = f"Bearer {PRIMARY_KEY}"


def model_name(client: httpx.Client) -> str:
    front: InferenceFront = client.app  # type: ignore[attr-defined]
    assert front.state.runtime is not None
    return front.state.runtime.name


def concrete(template: str, name: str) -> str:
    return template.replace("{name}", name).replace("{version}", "1").replace("{file}", "swagger-ui.css")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.template)
def test_every_route_in_the_table_is_served_open_or_keyed_as_it_says(client: httpx.Client, route) -> None:
    path = concrete(route.template, model_name(client))
    method = route.methods[0]
    body = (
        {"json": ROW}
        if "/v2/" not in path
        else {"json": {"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": ROW["data"][0]}]}}
    )
    anonymous = send(client, method, path, None, **(body if method == "POST" else {}))
    keyed = send(client, method, path, KEYED, **(body if method == "POST" else {}))
    if route.open:
        assert anonymous.status_code == 200, (path, anonymous.text)
    else:
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert keyed.status_code == 200, (path, keyed.text)


def test_metric_labels_are_the_templates_and_unknown_paths_are_other(client: httpx.Client) -> None:
    name = model_name(client)
    assert TABLE.label(f"/v2/models/{name}/versions/7/infer") == "/v2/models/{name}/versions/{version}/infer"
    assert TABLE.label("/v2/models//infer") == "other"
    assert TABLE.label("/wp-login.php") == "other"
    send(client, "GET", "/wp-login.php", KEYED)
    send(client, "POST", f"/v2/models/{name}/infer", KEYED, json={"inputs": []})
    exposition = send(client, "GET", "/metrics", None).text
    assert 'mlserve_requests_total{route="other",status="404"}' in exposition
    assert 'route="/v2/models/{name}/infer",status="400"' in exposition


def test_head_on_a_probe_answers_without_a_body(client: httpx.Client) -> None:
    for route in ROUTES:
        if "HEAD" in route.methods:
            path = route.template.replace("{name}", "weather-rain").replace("{version}", "1")
            answer = send(client, "HEAD", path, None)
            assert (answer.status_code, answer.content) == (200, b""), route.template


def test_the_openapi_document_describes_every_documented_route_with_its_parameters(client: httpx.Client) -> None:
    document = send(client, "GET", "/openapi.json", None).json()
    assert send(client, "GET", "/swagger.json", None).json() == document
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


HEADERS = ("content-type", "content-length", "retry-after")
ANSWERED_BY_THE_FRONT = [r for r in ROUTES if r.endpoint is not None and r.endpoint != "swagger"]


@pytest.mark.parametrize("route", ANSWERED_BY_THE_FRONT, ids=lambda r: r.template)
@pytest.mark.parametrize("name", ["own", "wrong"])
def test_the_fronts_health_and_metadata_answers_are_fastapis_byte_for_byte(
    client: httpx.Client, route, name: str
) -> None:
    """The front answers these routes without FastAPI; a query string hands the request to FastAPI, which
    ignores one it does not read. Both answers must be the same: status, type, headers and body."""
    own = model_name(client)
    path = concrete(route.template, own if name == "own" else "other-model")
    for method in route.methods:
        front = send(client, method, path, KEYED)
        fastapi = send(client, method, path + "?unread=1", KEYED)
        assert front.status_code == fastapi.status_code, (method, path)
        if route.endpoint != "metrics":  # the counts move with each request
            assert front.content == fastapi.content, (method, path)
        for header in ("content-type", "retry-after") if route.endpoint == "metrics" else HEADERS:
            assert front.headers.get(header) == fastapi.headers.get(header), (method, path, header)
    if route.endpoint == "model_metadata" and name == "own":
        # A parameter FastAPI reads from the query, as before.
        assert send(client, "GET", f"/v2/models/{own}?version=9", KEYED).status_code == 404


def test_a_worker_imports_fastapi_and_the_unused_exporters_only_when_needed(tmp_path) -> None:
    """The default configuration serves probes, metrics and scoring without FastAPI, Application Insights'
    exporter or the blob client (the memory a worker holds, bench/README.md); the API's pages still work,
    FastAPI built on the first request for them."""
    script = """
import json, sys
from starlette.testclient import TestClient
from serving.app import create_app, load_runtime
from serving.settings import load_settings

settings = load_settings()
app = create_app(settings, load_runtime(settings))
heavy = ("fastapi", "azure.monitor.opentelemetry.exporter", "azure.storage.blob", "opentelemetry.sdk", "jwt")
with TestClient(app) as http:
    statuses = [http.get(p).status_code for p in ("/ping", "/", "/v2/health/ready", "/metrics", "/v2")]
    statuses.append(http.post("/score", json={"data": [[5.0, 0.95, 10.0, 180.0, 3.0, 995.0, 2.0]]}).status_code)
    before = [m for m in heavy if m in sys.modules]
    docs = http.get("/docs")
    document = http.get("/openapi.json")
    print(json.dumps({"statuses": statuses, "before": before, "after": "fastapi" in sys.modules,
                      "docs": [docs.status_code, "swagger-ui" in docs.text],
                      "openapi": [document.status_code, "/score" in document.json()["paths"]]}))
"""
    import json
    import os
    import subprocess
    import sys

    from tests.serving.server import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "APPLICATIONINSIGHTS_"))}
    env["SERVING_ACCESS_LOG"] = "false"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["statuses"] == [200] * 6
    assert found["before"] == []
    assert found["after"] is True
    assert found["docs"] == [200, True]
    assert found["openapi"] == [200, True]


WORKER = """
import json, pickle, sys
from starlette.testclient import TestClient

factory = pickle.loads(sys.stdin.buffer.read())  # as uvicorn's spawned worker receives it
app = factory()
heavy = ("pydantic", "pydantic_core", "fastapi", "azure.monitor.opentelemetry.exporter", "azure.storage.blob", "jwt")
with TestClient(app) as http:
    key = {"Authorization": "Bearer " + sys.argv[1]}
    statuses = [http.get(p).status_code for p in ("/ping", "/", "/v2/health/ready", "/metrics", "/v2")]
    row = [5.0, 0.95, 10.0, 180.0, 3.0, 995.0, 2.0]
    statuses.append(http.post("/score", json={"data": [row]}, headers=key).status_code)
    statuses.append(http.post("/score", json={"data": [[5.0]]}, headers={"Authorization": "Bearer wrong"}).status_code)
    before = [m for m in heavy if m in sys.modules]
    docs = http.get("/docs")
    document = http.get("/openapi.json")
    print(json.dumps({"statuses": statuses, "before": before, "after": "fastapi" in sys.modules,
                      "docs": [docs.status_code, "swagger-ui" in docs.text],
                      "openapi": [document.status_code, "/score" in document.json()["paths"]]}))
"""


def test_a_worker_takes_the_parents_settings_without_pydantic_and_builds_fastapi_when_asked() -> None:
    """A multi-worker server's workers get the settings the parent validated, pickled with their start: they
    serve keys, probes, metrics and scoring without pydantic or FastAPI (the memory a worker holds,
    bench/README.md), and the API's pages still work, FastAPI built on the first request for them."""
    import json
    import os
    import pickle
    import subprocess
    import sys

    from serving.settings import Settings, handed_over
    from serving.worker import Worker
    from tests.serving.server import REPO

    settings = Settings(api_keys=PRIMARY_KEY, access_log=False)  # type: ignore[arg-type]
    factory = pickle.dumps(Worker(handed_over(settings)))
    assert PRIMARY_KEY.encode() in factory  # handed over with the start, not through the environment
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "APPLICATIONINSIGHTS_"))}
    result = subprocess.run(
        [sys.executable, "-c", WORKER, PRIMARY_KEY],
        input=factory,
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    found = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert found["statuses"] == [200] * 6 + [401]
    assert found["before"] == []
    assert found["after"] is True
    assert found["docs"] == [200, True]
    assert found["openapi"] == [200, True]


def test_settings_handed_to_workers_keep_secrets_out_of_reprs_and_cannot_change() -> None:
    from serving.settings import Settings, handed_over
    from serving.worker_settings import take_over

    settings = Settings(api_keys=PRIMARY_KEY, applicationinsights_connection_string="InstrumentationKey=x")  # type: ignore[arg-type]
    handed = take_over(handed_over(settings))
    assert [k.get_secret_value() for k in handed.api_keys] == [PRIMARY_KEY]  # type: ignore[attr-defined]
    assert handed.applicationinsights_connection_string.get_secret_value() == "InstrumentationKey=x"  # type: ignore[attr-defined]
    assert PRIMARY_KEY not in repr(handed)
    assert "InstrumentationKey" not in repr(handed)
    assert handed.max_rows == settings.max_rows  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        handed.max_rows = 1
