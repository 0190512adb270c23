"""The clients users already have, called as their documentation shows, against the real server:
`tritonclient` (the common Open Inference Protocol client; binary tensors are its default), boto3's
`sagemaker-runtime` through a stand-in of SageMaker's front, and an Azure ML SDK style call."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from tests.conftest import PRIMARY_KEY, SAMPLE_ROWS, direct_predictions
from tests.serving.server import RunningServer, running_server

AUTH = {"Authorization": f"Bearer {PRIMARY_KEY}"}  # passed as {**AUTH}: tritonclient adds its own headers to the dict
ROWS = np.array(SAMPLE_ROWS * 22, dtype=np.float32)[:64]  # 64 rows


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url.removeprefix("http://")) as http:
        yield http


def test_tritonclient_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("weather-rain")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("weather-rain", headers=AUTH)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 7]}]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]


@pytest.mark.parametrize("binary_inputs", [True, False], ids=["binary inputs", "JSON inputs"])
@pytest.mark.parametrize(
    "outputs",
    [None, {"label": True, "probabilities": False}, {"probabilities": False}, {"label": False, "probabilities": True}],
    ids=["default outputs (binary)", "mixed", "one JSON output", "mixed the other way"],
)
def test_tritonclient_infer_as_its_documentation_shows(
    client: triton.InferenceServerClient,
    reference: ort.InferenceSession,
    binary_inputs: bool,
    outputs: dict[str, bool] | None,
) -> None:
    tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=binary_inputs)
    requested = [triton.InferRequestedOutput(n, binary_data=b) for n, b in outputs.items()] if outputs else None
    result = client.infer("weather-rain", [tensor], outputs=requested, headers={**AUTH}, request_id="42")
    labels, probabilities = direct_predictions(reference, ROWS.tolist())
    response = result.get_response()
    assert response["id"] == "42"
    names = list(outputs) if outputs else ["label", "probabilities"]
    assert [o["name"] for o in response["outputs"]] == names
    if "label" in names:
        assert result.as_numpy("label").tolist() == labels
    if "probabilities" in names:
        np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)
    for output in response["outputs"]:
        as_binary = outputs[output["name"]] if outputs else True
        assert ("binary_data_size" in output.get("parameters", {})) is as_binary, output


def test_tritonclient_against_a_version_and_an_unknown_model(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [1, 7], "FP32")
    tensor.set_data_from_numpy(ROWS[:1])
    assert client.infer("weather-rain", [tensor], model_version="1", headers={**AUTH}).as_numpy("label").shape == (1,)
    with pytest.raises(triton.InferenceServerException, match="model 'other' not found"):
        client.infer("other", [tensor], headers={**AUTH})


def post_binary(server: RunningServer, header: dict, binary: bytes, declared: int | None = None) -> httpx.Response:
    document = json.dumps(header).encode()
    length = len(document) if declared is None else declared
    return httpx.post(
        server.url + "/v2/models/weather-rain/infer",
        content=document + binary,
        headers={**AUTH, "Inference-Header-Content-Length": str(length), "Content-Type": "application/octet-stream"},
    )


def tensor_header(size: int, shape: list[int] | None = None, datatype: str = "FP32") -> dict:
    parameters = {"binary_data_size": size}
    return {"inputs": [{"name": "input", "shape": shape or [2, 7], "datatype": datatype, "parameters": parameters}]}


@pytest.mark.parametrize(
    ("header", "binary", "declared", "message"),
    [
        (tensor_header(56), ROWS[:2].tobytes(), None, "shape [2, 7] of FP32 is 56 bytes"),
        (tensor_header(56 + 4), ROWS[:2].tobytes() + b"\0" * 4, None, "60 bytes, but shape [2, 7] of FP32 is 56"),
        (tensor_header(56), ROWS[:2].tobytes() + b"extra", None, "add up to 56"),
        (tensor_header(56), ROWS[:2].tobytes()[:40], None, "runs past the end of the body"),
        (tensor_header(56), ROWS[:2].tobytes(), 10**9, "Inference-Header-Content-Length"),
        (tensor_header(56), ROWS[:2].tobytes(), 5, "not valid JSON"),
        (tensor_header(8 * 14, datatype="BYTES"), b"\0" * 112, None, "datatype"),
    ],
    ids=["ok", "size against shape", "bytes left over", "bytes missing", "header past the body", "header cut", "BYTES"],
)
def test_binary_framing_that_does_not_add_up_is_a_400_naming_the_tensor(
    server: RunningServer, header: dict, binary: bytes, declared: int | None, message: str
) -> None:
    response = post_binary(server, header, binary, declared)
    if message.startswith("shape [2, 7] of FP32 is 56 bytes"):
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_binary_bodies_count_against_the_body_limit(server: RunningServer) -> None:
    rows = np.zeros((10_000, 7), dtype=np.float32)
    big = tensor_header(rows.nbytes, [10_000, 7])
    assert post_binary(server, big, rows.tobytes()).status_code == 200
    too_big = tensor_header(8 * 7 * 120_000, [120_000, 7], "FP64")
    response = post_binary(server, too_big, b"\0" * (8 * 7 * 120_000))
    assert response.status_code == 413


class SageMakerFront(BaseHTTPRequestHandler):
    """SageMaker's runtime front as the container sees it: `POST /endpoints/{name}/invocations` from
    boto3 (SigV4-signed) arrives at the container as `POST /invocations` with the body, Content-Type,
    Accept and X-Amzn-SageMaker-Custom-Attributes."""

    container = ""

    def do_POST(self) -> None:
        assert self.path.startswith("/endpoints/"), self.path
        assert self.path.endswith("/invocations"), self.path
        assert self.headers["Authorization"].startswith("AWS4-HMAC-SHA256"), "boto3 signs every call"
        body = self.rfile.read(int(self.headers["Content-Length"]))
        forwarded = {
            name: self.headers[name]
            for name in ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
            if self.headers[name] is not None
        }
        answer = httpx.post(self.container + "/invocations", content=body, headers=forwarded)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers["content-type"])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def sagemaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """boto3's sagemaker-runtime client, through the stand-in front to a server run as SageMaker runs it."""
    with running_server(tmp_path_factory.mktemp("sagemaker"), command=("serve",)) as container:
        front = ThreadingHTTPServer(("127.0.0.1", 0), type("Front", (SageMakerFront,), {"container": container.url}))
        threading.Thread(target=front.serve_forever, daemon=True).start()
        yield boto3.client(
            "sagemaker-runtime",
            endpoint_url=f"http://127.0.0.1:{front.server_address[1]}",
            region_name="eu-west-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="not-a-real-secret",
        )
        front.shutdown()


def test_boto3_invoke_endpoint_json_and_csv(sagemaker: object, reference: ort.InferenceSession) -> None:
    labels, probabilities = direct_predictions(reference, SAMPLE_ROWS)
    as_json = sagemaker.invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="mlserve-dev",
        ContentType="application/json",
        Body=json.dumps({"dataframe_split": {"columns": list(FEATURE_ORDER), "data": SAMPLE_ROWS}}),
    )
    assert json.loads(as_json["Body"].read()) == {"predictions": labels}
    as_csv = sagemaker.invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="mlserve-dev",
        ContentType="text/csv",
        Accept="text/csv",
        CustomAttributes="method=predict_proba",
        Body="\n".join(",".join(map(str, row)) for row in SAMPLE_ROWS) + "\n",
    )
    assert as_csv["ContentType"] == "text/csv"
    rows = list(csv.reader(io.StringIO(as_csv["Body"].read().decode())))
    np.testing.assert_allclose(np.array(rows, dtype=float), probabilities, rtol=1e-6)


def test_an_azure_ml_sdk_style_call(server: RunningServer, reference: ort.InferenceSession) -> None:
    """`Webservice.run(input_data)` posts the JSON string with the key as a bearer token."""
    input_data = json.dumps({"data": SAMPLE_ROWS})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + PRIMARY_KEY}
    response = httpx.post(server.url + "/score", content=input_data, headers=headers)
    assert response.json() == {"predictions": direct_predictions(reference, SAMPLE_ROWS)[0]}


FEATURE_ORDER: tuple[str, ...] = tuple(
    json.loads(ort.InferenceSession(str(Path(__file__).parents[2] / "serving/model/model.onnx")).get_modelmeta()
               .custom_metadata_map["feature_names"])
)  # fmt: skip


def test_binary_tensor_bytes_are_not_taken_for_json_separators(server: RunningServer) -> None:
    """10,000 rows of 0x2C2C2C2C (2.4e-12): every byte is a comma, none of them JSON."""
    rows = np.frombuffer(b"," * (10_000 * 7 * 4), dtype=np.float32).reshape(10_000, 7)
    response = post_binary(server, tensor_header(rows.nbytes, [10_000, 7]), rows.tobytes())
    assert response.status_code == 200, response.text


KSERVE_SCRIPT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

url, key, binary = sys.argv[1], sys.argv[2], sys.argv[3] == "binary"
rows = np.array(json.loads(sys.argv[4]), dtype=np.float32)

async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    tensor = InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    request = InferRequest(model_name="weather-rain", infer_inputs=[tensor], request_id="7")
    response = await client.infer(url, request, model_name="weather-rain", headers={"Authorization": "Bearer " + key})
    print(json.dumps({o.name: o.as_numpy().tolist() for o in response.outputs}))

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["json", "binary"])
def test_the_kserve_sdks_v2_rest_client(server: RunningServer, reference: ort.InferenceSession, mode: str) -> None:
    python = Path(__file__).parents[2] / os.environ.get("KSERVE_PYTHON", ".tools/kserve/bin/python")
    if not python.exists():
        pytest.fail(f"{python} not found: run `make test`, which installs the KServe SDK's environment")
    result = subprocess.run(
        [str(python), "-c", KSERVE_SCRIPT, server.url, PRIMARY_KEY, mode, json.dumps(SAMPLE_ROWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    labels, probabilities = direct_predictions(reference, SAMPLE_ROWS)
    assert outputs["label"] == labels
    np.testing.assert_allclose(outputs["probabilities"], probabilities, rtol=1e-6)
