"""schemathesis drives the server through its own OpenAPI document: no 5xx, responses as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PRIMARY_KEY
from tests.serving.server import RunningServer

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_server_errors(server: RunningServer, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {PRIMARY_KEY}",
            "--checks",
            CHECKS,
            "--max-examples",
            "60",
            "--workers",
            "1",
            "--seed",
            "20260101",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout
