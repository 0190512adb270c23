"""The ACI TLS proxy for real: Caddy with proxy/Caddyfile in front of a server on loopback.

The environment comes from the builder the stack uses (stacks.proxy); only the ports and Caddy's
local CA (instead of Let's Encrypt) differ. Clients verify against that CA's root certificate.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stacks.proxy import aci_hosts_pattern, proxy_environment
from tests.serving.server import REPO, free_port

CADDY = shutil.which("caddy")
needs_caddy = pytest.mark.skipif(CADDY is None, reason="caddy is not installed (apt-get install caddy)")
HOST = "localhost"


@dataclass
class Proxy:
    https_port: int
    http_port: int
    root_ca: Path

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.root_ca)), timeout=15)


def _open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def tls_proxy(tmp: Path, upstream_port: int) -> Iterator[Proxy]:
    """What an ACI stack with `aci.domain: localhost` runs in front of its server."""
    https_port, http_port, ask_port = free_port(), free_port(), free_port()
    environment = proxy_environment(
        aci_hosts_pattern("unused", "westeurope", custom_domain=HOST),
        upstream_port,
        https_port=str(https_port),
        http_port=str(http_port),
        ask_port=str(ask_port),
        local_certs="local_certs",
    )
    data = tmp / "caddy-data"
    env = {**os.environ, **environment, "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(tmp / "caddy-config")}
    log_path = tmp / "caddy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(CADDY), "run", "--config", str(REPO / "proxy" / "Caddyfile"), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        root = data / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 30
        while not (root.exists() and _open(https_port)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"caddy did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield Proxy(https_port, http_port, root)
    finally:
        process.terminate()
        process.wait(timeout=10)
