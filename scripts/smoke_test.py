"""Smoke test of a deployed stack: health, then one prediction with the key, on every endpoint it has.

    pulumi stack output --json --show-secrets > outputs.json
    python scripts/smoke_test.py outputs.json

Azure endpoints (scoring_uri) are called over HTTPS with the primary key (an http:// URI fails: the
key would travel in clear text), and plain HTTP must redirect to HTTPS; the SageMaker endpoint
(sagemaker_endpoint_name) through `aws sagemaker-runtime invoke-endpoint` (IAM-signed).
Exits non-zero, naming what failed, if any check fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

READY_TIMEOUT = float(os.environ.get("SMOKE_READY_TIMEOUT", "300"))
HTTP_PORT = int(os.environ.get("SMOKE_HTTP_PORT", "80"))  # where plain HTTP is answered (tests use another)


def _request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {})  # noqa: S310 (our endpoint)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as an HTTPError (with its Location) instead of following it."""

    def redirect_request(self, *_: object, **__: object) -> None:
        return None


def check_redirect(base: str) -> None:
    """Plain HTTP on port 80 answers a redirect to the same path over HTTPS, and nothing else."""
    host = base.removeprefix("https://").split("/", 1)[0].split(":", 1)[0]
    plain = f"http://{host}:{HTTP_PORT}/v2/health/ready"
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(plain, timeout=10)
        status, location = 200, ""
    except urllib.error.HTTPError as error:
        status, location = error.code, error.headers.get("Location", "")
    except OSError as error:
        raise SystemExit(f"FAIL GET {plain}: {error}") from None
    if status not in (301, 302, 307, 308) or not location.startswith("https://"):
        raise SystemExit(f"FAIL GET {plain}: answered {status} {location!r}, expected a redirect to https://")
    print(f"ok {plain}: redirects to {location}")


def check_http(scoring_uri: str, key: str | None, row: list[Any]) -> None:
    if not scoring_uri.startswith("https://"):
        raise SystemExit(f"FAIL {scoring_uri}: not HTTPS, so the key would travel in clear text")
    base = scoring_uri.removesuffix("/score")
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            status, _ = _request(base + "/v2/health/ready")
            if status == 200:
                break
        except OSError:
            status = 0
        if time.monotonic() > deadline:
            raise SystemExit(
                f"FAIL {base}/v2/health/ready: not ready after {READY_TIMEOUT:.0f}s (last status {status})"
            )
        time.sleep(min(5.0, READY_TIMEOUT / 4))
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, body = _request(scoring_uri, json.dumps({"data": [row]}).encode(), headers)
    if status != 200:
        raise SystemExit(f"FAIL POST {scoring_uri}: HTTP {status}: {body[:200]!r}")
    predictions = json.loads(body).get("predictions")
    if not isinstance(predictions, list) or len(predictions) != 1:
        raise SystemExit(f"FAIL POST {scoring_uri}: unexpected answer {body[:200]!r}")
    if key:
        status, _ = _request(scoring_uri, json.dumps({"data": [row]}).encode(), {"Content-Type": "application/json"})
        if status != 401:
            raise SystemExit(f"FAIL POST {scoring_uri} without a key answered {status}, expected 401")
    print(f"ok {scoring_uri}: prediction {predictions[0]}")
    check_redirect(base)


def _csv_line(row: list[Any]) -> str:
    """The row as one CSV line: numbers as `%g`, text (a model's text columns) quoted where it needs it."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([v if isinstance(v, str) else f"{v:g}" for v in row])
    return buffer.getvalue()


def check_sagemaker(endpoint: str, region: str, row: list[Any]) -> None:
    aws = os.environ.get("AWS_CLI", "aws")
    with tempfile.TemporaryDirectory() as directory:
        answer = Path(directory) / "answer"
        result = subprocess.run(
            [
                aws,
                "sagemaker-runtime",
                "invoke-endpoint",
                "--region",
                region,
                "--endpoint-name",
                endpoint,
                "--content-type",
                "text/csv",
                "--accept",
                "text/csv",
                "--cli-binary-format",
                "raw-in-base64-out",
                "--body",
                _csv_line(row),
                str(answer),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise SystemExit(f"FAIL invoke-endpoint {endpoint}: {result.stderr.strip()[:300]}")
        lines = answer.read_text().split()
    if len(lines) != 1:
        raise SystemExit(f"FAIL invoke-endpoint {endpoint}: unexpected answer {lines[:3]}")
    print(f"ok sagemaker {endpoint}: prediction {lines[0]}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    outputs = json.loads(Path(argv[0]).read_text())
    # The stack's own model's sample row (`model_sample`: its sample_input metadata, or zeros).
    row = outputs.get("model_sample")
    if not isinstance(row, list) or not row:
        raise SystemExit("FAIL: the outputs have no model_sample (a row the model takes); run `pulumi up` first")
    checked = 0
    if "scoring_uri" in outputs:
        check_http(outputs["scoring_uri"], outputs.get("primary_key"), row)
        checked += 1
    if "sagemaker_endpoint_name" in outputs:
        check_sagemaker(outputs["sagemaker_endpoint_name"], outputs["sagemaker_region"], row)
        checked += 1
    if not checked:
        raise SystemExit("FAIL: the stack has no endpoint outputs (scoring_uri, sagemaker_endpoint_name)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
