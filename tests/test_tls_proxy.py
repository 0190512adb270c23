"""The ACI TLS front for real: Caddy with proxy/Caddyfile in front of the real server (tests/tls.py)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from stacks.proxy import aci_hosts_pattern
from tests.serving.server import REPO, running_server
from tests.tls import HOST, Proxy, needs_caddy, tls_proxy

pytestmark = needs_caddy
KEY = "tls-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("tls")
    with running_server(tmp, env={"SERVING_API_KEYS": KEY}) as server, tls_proxy(tmp, server.port) as proxy:
        yield proxy


def test_https_answers_with_a_certificate_for_the_host(proxy: Proxy) -> None:
    with proxy.client() as client:
        response = client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_keys_work_over_tls(proxy: Proxy) -> None:
    row = {"data": [[5, 0.95, 10, 180, 3, 995, 2]]}
    with proxy.client() as client:
        assert client.post("/score", json=row).status_code == 401
        answered = client.post("/score", json=row, headers={"Authorization": f"bearer {KEY}"})
    assert answered.status_code == 200, answered.text
    assert "predictions" in answered.json() or "result" in answered.json()


def test_plain_http_is_redirected_to_https_with_path_and_query(proxy: Proxy) -> None:
    response = httpx.post(f"http://{HOST}:{proxy.http_port}/score?x=1", content=b"{}", follow_redirects=False)
    assert response.status_code == 308  # keeps the method and body
    assert response.headers["location"] == f"https://{HOST}/score?x=1"


def test_no_certificate_for_a_host_name_that_is_not_ours(proxy: Proxy) -> None:
    """Anyone can send any SNI; the ask endpoint keeps the proxy from requesting certificates for it."""
    context = ssl.create_default_context(cafile=str(proxy.root_ca))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="attacker.example")


def test_the_hosts_pattern_allows_the_groups_fqdn_only() -> None:
    pattern = re.compile(aci_hosts_pattern("mlserve-dev-rain", "West Europe", None))
    assert pattern.match("mlserve-dev-rain.a1b2c3d4e5.westeurope.azurecontainer.io")
    assert pattern.match("mlserve-dev-rain-a1b2c3d4e5.westeurope.azurecontainer.io")
    assert pattern.match("mlserve-dev-rain.westeurope.azurecontainer.io")
    assert not pattern.match("mlserve-dev-rain.a1b2.eastus.azurecontainer.io"), "another region"
    assert not pattern.match("other.mlserve-dev-rain.westeurope.azurecontainer.io")
    assert not pattern.match("mlserve-dev-rainx.westeurope.azurecontainer.io")
    assert not pattern.match("mlserve-dev-rain.westeurope.azurecontainer.io.attacker.example")


def caddy_json() -> dict:
    """proxy/Caddyfile as Caddy itself reads it (`caddy adapt`)."""
    from tests.tls import CADDY

    adapted = subprocess.run(
        [str(CADDY), "adapt", "--config", str(REPO / "proxy" / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(adapted.stdout)


def handlers(node: object, kind: str) -> list[dict]:
    """Every handler of `kind` anywhere in a piece of Caddy's JSON config."""
    if isinstance(node, list):
        return [h for item in node for h in handlers(item, kind)]
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("handler") == kind else []
    return found + [h for value in node.values() for h in handlers(value, kind)]


def test_the_proxy_gives_up_idle_and_slow_connections_before_the_server_does() -> None:
    """An upstream connection the proxy keeps longer than the server would be reused as the server closes
    it (a 502 for the client, seen about once in 700 requests after idle gaps of ~5 s); a body the proxy
    waits for longer than the server would only meet the server's 408."""
    from serving.settings import Settings

    server = Settings()
    (https,) = [s for s in caddy_json()["apps"]["http"]["servers"].values() if s["listen"] == [":443"]]
    proxies = handlers(https["routes"], "reverse_proxy")
    assert proxies, https
    for proxy in proxies:
        assert proxy["transport"]["keep_alive"]["idle_timeout"] / 1e9 < server.keep_alive_timeout_seconds
    assert https["read_timeout"] / 1e9 <= server.body_timeout_seconds
    assert https["read_header_timeout"] / 1e9 <= server.header_timeout_seconds


def test_bursts_after_idle_gaps_around_the_servers_keep_alive_all_succeed(proxy: Proxy) -> None:
    row = {"data": [[5, 0.95, 10, 180, 3, 995, 2]]}
    headers = {"Authorization": f"Bearer {KEY}"}
    clients = [proxy.client() for _ in range(8)]
    statuses: list[int] = []
    with ThreadPoolExecutor(len(clients)) as pool:
        for gap in (4.95, 5.1, 0):
            statuses += pool.map(lambda c: c.post("/score", json=row, headers=headers).status_code, clients)
            time.sleep(gap)
    for client in clients:
        client.close()
    assert statuses == [200] * len(statuses)
