"""The real image, run the three ways the clouds run it, configured as the stacks configure it.

Each container's command, environment and restrictions are read from the program's own offline
evaluation (the resources `pulumi up` would create), not restated here.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from offline.mocks import Evaluation, evaluate
from offline.plan import render
from stacks.proxy import aci_hosts_pattern
from tests.conftest import PRIMARY_KEY, SECONDARY_KEY
from tests.container.podman import Images, address, build_as_declared, build_images, logs, missing, podman, running
from tests.serving.models import linear_regressor
from tests.serving.server import REPO, free_port
from tests.tls import tls_proxy

pytestmark = [
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    # Alone: published container ports are host ports podman forwards, which a parallel test could
    # be handed again by the kernel; and the images are built once.
    pytest.mark.serial,
]


@pytest.fixture(scope="module")
def images() -> Images:
    return build_images()


def wait_ready(url: str, name: str, timeout: float = 60, **client: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, **client).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{name} not ready at {url}:\n{logs(name)}")


def plain_environment(container: dict) -> list[str]:
    """`-e` options for the settings a deployed container gets (secrets are the test's own)."""
    options = []
    for variable in container.get("environmentVariables", container.get("env", [])):
        value = variable.get("value")
        if value is not None:
            options += ["-e", f"{variable['name']}={value}"]
    return options


def smoke(tmp_path: Path, outputs: dict, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/smoke_test.py, as deploy.yml runs it after `pulumi up`."""
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_test.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


# ACI: the container group


@pytest.fixture(scope="module")
def dev() -> Evaluation:
    return evaluate("dev")


def test_aci_group_serves_https_through_its_proxy_only(images: Images, dev: Evaluation, tmp_path: Path) -> None:
    serving, proxy = dev.one("azure-native:containerinstance:ContainerGroup").inputs["containers"]
    https_port, http_port = free_port(), free_port()
    data = tmp_path / "proxy-data"  # the Azure Files share
    data.mkdir()
    group = f"mlserve-test-aci-{os.getpid()}"
    # A group shares one network namespace: the proxy joins the server's; only the group's
    # public ports (443, 80) are published, as ACI exposes only ipAddress.ports.
    server_options = ["-p", f"{https_port}:443", "-p", f"{http_port}:80", "--entrypoint", serving["command"][0]]
    server_options += [*plain_environment(serving), "-e", f"SERVING_API_KEYS={PRIMARY_KEY},{SECONDARY_KEY}"]
    # The stack's proxy settings, with the name it may certify and Caddy's local CA for this test.
    proxy_env = {v["name"]: v["value"] for v in proxy["environmentVariables"]}
    proxy_env |= {"MLSERVE_TLS_HOSTS": aci_hosts_pattern("", "", "localhost"), "MLSERVE_LOCAL_CERTS": "local_certs"}
    proxy_options = ["--network", f"container:{group}", "-v", f"{data}:/data"]
    proxy_options += [o for k, v in proxy_env.items() for o in ("-e", f"{k}={v}")]
    with (
        running(group, images.serving, serving["command"][1:], server_options),
        running(f"{group}-proxy", images.proxy, (), proxy_options) as proxy_name,
    ):
        root = data / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 60
        while not root.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert root.exists(), logs(proxy_name)
        wait_ready(f"https://localhost:{https_port}/v2/health/ready", group, verify=_context(root))
        outputs = {
            "scoring_uri": f"https://localhost:{https_port}/score",
            "primary_key": PRIMARY_KEY,
            "model_sample": dev.outputs["model_sample"],
        }
        checked = smoke(tmp_path, outputs, SSL_CERT_FILE=str(root), SMOKE_HTTP_PORT=str(http_port))
        assert checked.returncode == 0, checked.stdout + checked.stderr + logs(group)
        assert "redirects to https://localhost/v2/health/ready" in checked.stdout
        # From elsewhere on the network the group takes connections on 443 only: the server listens
        # on the group's loopback.
        ip = address(group)
        socket.create_connection((ip, 443), timeout=5).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((ip, 8080), timeout=5)


def _context(root: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(root))


# Kubernetes: the Deployment's pod


@pytest.fixture(scope="module")
def prod() -> Evaluation:
    return evaluate("prod")


def test_kubernetes_pod_runs_read_only_as_its_user_with_keys_from_files(
    images: Images, prod: Evaluation, tmp_path: Path
) -> None:
    (deployment,) = [
        d for d in prod.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "mlserve"
    ]
    pod = deployment.inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    mount = next(m for m in container["volumeMounts"] if m.get("readOnly"))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SERVING_API_KEYS").write_text(f"{PRIMARY_KEY},{SECONDARY_KEY}")
    port = free_port()
    name = f"mlserve-test-pod-{os.getpid()}"
    options = ["-p", f"{port}:8080", "--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    options += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    # Read-only root; the pod's emptyDir /tmp is its only writable path.
    options += ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=256m,mode=1777"]
    options += ["-v", f"{secrets}:{mount['mountPath']}:ro", *plain_environment(container)]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    with running(name, images.serving, container["args"], options):
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/v2/health/ready", name)
        row = {"data": [prod.outputs["model_sample"]]}
        assert httpx.post(base + "/score", json=row, timeout=10).status_code == 401
        answer = httpx.post(base + "/score", json=row, headers={"Authorization": f"Bearer {PRIMARY_KEY}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        metadata = httpx.get(base + "/v2/models/weather-rain", headers={"Authorization": f"Bearer {PRIMARY_KEY}"})
        assert metadata.json()["versions"] == ["1"], "the stack's model version, from SERVING_MODEL_VERSION"
        # The smoke test, through a TLS front standing in for the cluster's gateway.
        with tls_proxy(tmp_path, port) as front:
            outputs = {"scoring_uri": front.url + "/score", "primary_key": PRIMARY_KEY}
            result = smoke(
                tmp_path,
                {**outputs, "model_sample": prod.outputs["model_sample"]},
                SSL_CERT_FILE=str(front.root_ca),
                SMOKE_HTTP_PORT=str(front.http_port),
            )
        assert result.returncode == 0, result.stdout + result.stderr
        # Rotation: the Secret's file changes, the running server takes the new keys.
        rotated = "rotated-key-0123456789abcdef"
        (secrets / "SERVING_API_KEYS").write_text(f"{rotated},{SECONDARY_KEY}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = httpx.post(base + "/score", json=row, headers={"Authorization": f"Bearer {rotated}"}).status_code
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, logs(name)
        # SIGTERM, as Kubernetes stops a pod: the server drains and exits 0.
        podman("stop", "-t", "30", name)
        exit_code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert exit_code == "0", logs(name)


# SageMaker: `serve`, port 8080, the model artifact unpacked into /opt/ml/model


@pytest.fixture
def user_model(tmp_path: Path) -> Path:
    """A user's model as SageMaker gets it: model.tar.gz from S3, unpacked into /opt/ml/model."""
    source = tmp_path / "source"
    linear_regressor(source / "model.onnx", [1.0, 2.0, 3.0], 0.5, {"name": "tariff", "version": "7"})
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "model.onnx", arcname="model.onnx")
    unpacked = tmp_path / "opt-ml-model"
    unpacked.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    unpacked.chmod(0o755)
    (unpacked / "model.onnx").chmod(0o644)
    return unpacked


def test_sagemaker_serves_a_user_model_from_its_artifact(images: Images, dev: Evaluation, user_model: Path) -> None:
    environment = dev.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]
    port = free_port()
    name = f"mlserve-test-sagemaker-{os.getpid()}"
    options = ["-p", f"{port}:8080", "-v", f"{user_model}:/opt/ml/model:ro"]
    options += [o for k, v in environment.items() for o in ("-e", f"{k}={v}")]
    with running(name, images.serving, ["serve"], options):  # SageMaker runs `docker run <image> serve`
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/ping", name)
        csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
        answer = httpx.post(base + "/invocations", content=b"1,1,1\n2,0,1\n", headers=csv)
        assert answer.status_code == 200, answer.text
        assert [float(v) for v in answer.text.split()] == [6.5, 5.5], "the user's model, not the demo"
        metadata = httpx.get(base + f"/v2/models/{environment['SERVING_MODEL_NAME']}").json()
        assert metadata["name"] == environment["SERVING_MODEL_NAME"], "the stack's name, not the file's"
        # The smoke test's invoke-endpoint, answered as SageMaker's runtime does: POST /invocations.
        runtime = user_model.parent / "aws"
        runtime.write_text(
            f"#!{sys.executable}\nimport sys, urllib.request\nargs = sys.argv[1:]\n"
            "value = lambda flag: args[args.index(flag) + 1]\n"
            f"request = urllib.request.Request({base + '/invocations'!r}, data=value('--body').encode(), "
            "headers={'Content-Type': value('--content-type'), 'Accept': value('--accept')})\n"
            "open(args[-1], 'wb').write(urllib.request.urlopen(request, timeout=30).read())\n"
        )
        runtime.chmod(0o755)
        outputs = {"sagemaker_endpoint_name": "mlserve-dev", "sagemaker_region": "eu-west-1", "model_sample": [1, 1, 1]}
        result = smoke(user_model.parent, outputs, AWS_CLI=str(runtime))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ok sagemaker mlserve-dev: prediction 6.5" in result.stdout


# The journey: a user's model, from a pickle to a container serving it


def test_from_a_pickle_to_the_container_serving_it(
    images: Images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline over a frame with a text column, as teams train them: imported with the team's rows,
    baked into the image the program declares, served by column name."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, size=100).astype(float),
            "tenure": rng.normal(size=100),
            "spend": rng.normal(size=100),
            "plan": rng.choice(["basic", "plus", "pro"], size=100),
        }
    )
    labels = np.where((frame["tenure"] > 0) | (frame["plan"] == "basic"), "churn", "stay")
    columns = ColumnTransformer(
        [("numbers", StandardScaler(), ["age", "tenure", "spend"]), ("plan", OneHotEncoder(), ["plan"])]
    )
    pipeline = make_pipeline(columns, LogisticRegression()).fit(frame, labels)
    joblib.dump(pipeline, tmp_path / "model.pkl")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    # 1. Import it, checked on the team's rows.
    imported = subprocess.run(
        [sys.executable, "-m", "importer", str(tmp_path / "model.pkl"), "-o", str(tmp_path / "model.onnx"),
         "--name", "churn", "--version", "3", "--sample", str(tmp_path / "rows.csv")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    digest = imported.stdout.split("sha256 ")[1].split()[0]
    # 2. Make it the stack's source; 3. the offline plan shows its digest on the image.
    monkeypatch.setenv("MLSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    settings = {"name": "churn", "version": "3", "source": str(tmp_path / "model.onnx"), "sha256": digest}
    evaluation = evaluate("dev", {"mlserve:model": settings})
    assert f'labels.mlserve.model-sha256: "{digest}"' in render("dev", evaluation)
    # 4. Rebuild the image as the program declares it; 5. the container serves the new version.
    declared = evaluation.serving_image().inputs
    tag = build_as_declared(f"localhost/mlserve-test-journey:{digest[:12]}", declared)
    try:
        found = json.loads(podman("image", "inspect", tag, "--format", "{{json .Labels}}").stdout)
        assert found["mlserve.model-sha256"] == digest
        assert (found["mlserve.model"], found["mlserve.model-version"]) == ("churn", "3")
        environment = evaluation.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]
        port = free_port()
        options = ["-p", f"{port}:8080", *(o for k, v in environment.items() for o in ("-e", f"{k}={v}"))]
        name = f"mlserve-test-journey-{os.getpid()}"
        with running(name, tag, ["serve"], options):
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/ping", name)
            metadata = httpx.get(base + "/v2/models/churn").json()
            assert (metadata["name"], metadata["versions"]) == ("churn", ["3"])
            assert [i["datatype"] for i in metadata["inputs"]] == ["FP32", "FP32", "FP32", "BYTES"]
            records = {"data": frame.head(5).to_dict(orient="records"), "method": "predict_proba"}
            answer = httpx.post(base + "/score", json=records, timeout=10).json()
            assert answer["classes"] == ["churn", "stay"]
            np.testing.assert_allclose(answer["predictions"], pipeline.predict_proba(frame.head(5)), atol=1e-5)
            unknown = {"data": [{**records["data"][0], "plan": "platinum"}]}
            refused = httpx.post(base + "/score", json=unknown, timeout=10)
            assert refused.status_code == 400
            assert "plan" in refused.json()["error"]
    finally:
        podman("rmi", "-f", tag, check=False)
