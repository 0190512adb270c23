"""Azurite, Microsoft's local stand-in for the blob API, for tests of what the server writes to blob storage.

Installed from npm into .tools/azurite (`make azurite`); tests that need it
are skipped, saying why, where it (or node) is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.server import REPO, free_port

AZURITE_BLOB = REPO / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's fixed development account: documented, public, and accepted by nothing but Azurite.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)


def require_azurite() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed, so Azurite cannot run (apt-get install nodejs npm)")
    if not AZURITE_BLOB.exists():
        pytest.skip("Azurite is not installed: make azurite (needs npm)")


@contextmanager
def running_azurite(location: Path, cores: str | None = None) -> Iterator[Azurite]:
    """Azurite on a free port, its data in `location`; pinned to `cores` (a taskset list) when given."""
    require_azurite()
    port = free_port()
    where = ["--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location)]
    pinned = ["taskset", "-c", cores] if cores else []
    process = subprocess.Popen(
        [*pinned, str(AZURITE_BLOB), *where, "--silent", "--skipApiVersionCheck"],  # the SDK may be newer
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not start (exit status {process.poll()})") from None
                time.sleep(0.1)
        yield Azurite(port, process)
    finally:
        process.kill()  # its data is the test's temporary directory: nothing to shut down cleanly
        process.wait(timeout=10)
