"""The ACI TLS front for real: Caddy with proxy/Caddyfile in front of the real server, on loopback.

The environment comes from the same builder the stack uses; only ports and Caddy's local CA
(instead of Let's Encrypt) differ. Certificates are checked against that CA's root.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stacks.proxy import aci_hosts_pattern, proxy_environment
from tests.serving.server import REPO, free_port, running_server

CADDY = shutil.which("caddy")
pytestmark = pytest.mark.skipif(CADDY is None, reason="caddy is not installed (apt-get install caddy)")
KEY = "tls-test-key-0123456789abcdef"
HOST = "localhost"


@dataclass
class Proxy:
    https_port: int
    http_port: int
    root_ca: Path

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.root_ca))
        return httpx.Client(base_url=f"https://{HOST}:{self.https_port}", verify=context, timeout=15)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("tls")
    with running_server(tmp, env={"SERVING_API_KEYS": KEY}) as server:
        upstream_port = int(server.url.rsplit(":", 1)[1])
        https_port, http_port, ask_port = free_port(), free_port(), free_port()
        environment = proxy_environment(
            # What an ACI stack with `aci.domain: localhost` would get.
            aci_hosts_pattern("unused", "westeurope", custom_domain=HOST),
            upstream_port,
            https_port=str(https_port),
            http_port=str(http_port),
            ask_port=str(ask_port),
            local_certs="local_certs",
        )
        data = tmp / "data"
        env = {**os.environ, **environment, "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(tmp / "config")}
        log = (tmp / "caddy.log").open("wb")
        process = subprocess.Popen(
            [str(CADDY), "run", "--config", str(REPO / "proxy" / "Caddyfile"), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            root = data / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            deadline = time.monotonic() + 30
            while not (root.exists() and port_open(https_port)):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"caddy did not start:\n{(tmp / 'caddy.log').read_text()}")
                time.sleep(0.1)
            yield Proxy(https_port, http_port, root)
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
    import re

    pattern = re.compile(aci_hosts_pattern("mlserve-dev-rain", "West Europe", None))
    assert pattern.match("mlserve-dev-rain.a1b2c3d4e5.westeurope.azurecontainer.io")
    assert pattern.match("mlserve-dev-rain-a1b2c3d4e5.westeurope.azurecontainer.io")
    assert pattern.match("mlserve-dev-rain.westeurope.azurecontainer.io")
    assert not pattern.match("mlserve-dev-rain.a1b2.eastus.azurecontainer.io"), "another region"
    assert not pattern.match("other.mlserve-dev-rain.westeurope.azurecontainer.io")
    assert not pattern.match("mlserve-dev-rainx.westeurope.azurecontainer.io")
    assert not pattern.match("mlserve-dev-rain.westeurope.azurecontainer.io.attacker.example")
