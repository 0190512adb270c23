"""The drift report reads captured weeks from S3 (moto's server) and Azure blob storage (Azurite), the
stand-ins of SageMaker Data Capture's bucket and the ACI/AKS capture container."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from serving.drift.__main__ import main
from tests.drift.week import ENDPOINT, OURS, SAGEMAKER, SINCE, UNTIL, model_with_baseline, write_week
from tests.serving.server import REPO

PERIOD = ["--since", SINCE.isoformat(), "--until", UNTIL.isoformat()]
AZURITE = Path(os.environ.get("AZURITE", REPO / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"))
# Azurite's published development account (the same in every installation).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within 60 s")


@contextmanager
def running(command: list[str], port: int, what: str, cwd: Path) -> Iterator[None]:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port, process, what)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # Azurite sometimes waits on open connections: it holds no data we need
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def weeks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store-weeks")


@pytest.fixture(scope="module")
def model(weeks: Path) -> Path:
    return model_with_baseline(weeks / "model.onnx")


def upload(source: Path, put: Callable[[str, bytes], None]) -> int:
    """Every file below the week's endpoint folder, keyed as SageMaker keys them: <endpoint>/<variant>/..."""
    files = sorted(p for p in source.rglob("*.jsonl"))
    for path in files:
        put(f"{ENDPOINT}/{path.relative_to(source).as_posix()}", path.read_bytes())
    return len(files)


def report(tmp_path: Path, *args: str | Path) -> tuple[int, dict]:
    out = tmp_path / "report"
    code = main([*map(str, args), "--output-dir", str(out)])
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return code, summary


@pytest.fixture(scope="module")
def s3(weeks: Path) -> Iterator[str]:
    """moto's S3 server on a free port; the bucket holds a week of SageMaker CSV capture, shifted."""
    import boto3

    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "eu-west-1"}.items():  # fmt: skip
            env.setenv(key, value)
        env.delenv("AWS_PROFILE", raising=False)
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        with running(command, port, "moto's server", weeks):
            url = f"http://127.0.0.1:{port}"
            client = boto3.client("s3", endpoint_url=url)
            client.create_bucket(Bucket="capture", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            week = write_week(weeks / "s3", SAGEMAKER, ("Temperature_C", "Wind_bearing_degrees"))
            sent = upload(
                week, lambda key, data: client.put_object(Bucket="capture", Key=f"datacapture/{key}", Body=data)
            )
            assert sent == 168
            yield url


def test_a_shifted_week_in_s3_is_found_in_exactly_the_shifted_columns(tmp_path: Path, s3: str, model: Path) -> None:
    source = f"s3://capture/datacapture/{ENDPOINT}"
    code, summary = report(tmp_path, "--source", source, "--endpoint-url", s3, "--model", model, *PERIOD)
    assert code == 1
    assert summary["drifted_columns"] == ["Temperature_C", "Wind_bearing_degrees"]
    assert (summary["records"], summary["rows"]) == (336, 1680)
    assert summary["source"] == source


def test_a_missing_bucket_is_bad_input(
    tmp_path: Path, s3: str, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = report(tmp_path, "--source", "s3://no-such-bucket/x", "--endpoint-url", s3, "--model", model, *PERIOD)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: s3://no-such-bucket/x: S3 answered NoSuchBucket"), err


@pytest.fixture(scope="module")
def blob(weeks: Path) -> Iterator[str]:
    """Azurite's blob service on a free port; the container holds a week of our JSON capture, unshifted."""
    if not AZURITE.exists():
        pytest.skip(f"Azurite is not installed at {AZURITE} (make azurite; needs node and npm)")
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs npm), so Azurite cannot run")
    from azure.storage.blob import ContainerClient

    port = free_port()
    command = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(weeks / "azurite"),
               "--silent", "--skipApiVersionCheck", "--loose"]  # fmt: skip
    with running(command, port, "Azurite", weeks):
        connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                      f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")  # fmt: skip
        container = ContainerClient.from_connection_string(connection, "capture")
        container.create_container()
        week = write_week(weeks / "blob", OURS)
        assert upload(week, lambda key, data: container.upload_blob(key, data)) == 168
        yield connection


def test_an_unshifted_week_in_blob_storage_shows_no_drift(tmp_path: Path, blob: str, model: Path) -> None:
    source = f"az://capture/{ENDPOINT}"
    code, summary = report(tmp_path, "--source", source, "--connection-string", blob, "--model", model, *PERIOD)
    assert code == 0
    assert summary["drifted_columns"] == []
    assert (summary["records"], summary["rows"]) == (336, 1680)


def test_the_connection_string_may_come_from_the_environment(
    tmp_path: Path, blob: str, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", blob)
    code, summary = report(tmp_path, "--source", f"az://capture/{ENDPOINT}/3", "--model", model, *PERIOD)
    assert (code, summary["rows"]) == (0, 1680)


def test_a_missing_container_is_bad_input(
    tmp_path: Path, blob: str, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = report(tmp_path, "--source", "az://absent/x", "--connection-string", blob, "--model", model, *PERIOD)
    err = capsys.readouterr().err
    assert code == 2
    assert "the blob service answered ContainerNotFound" in err, err
    assert "Traceback" not in err
