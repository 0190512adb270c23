"""Each protocol over real HTTP, checked against a direct onnxruntime run of the same model."""

from __future__ import annotations

import csv
import io

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import FEATURES, SAMPLE_ROWS, direct_predictions


def test_sample_rows_cover_both_classes(reference: ort.InferenceSession) -> None:
    labels, _ = direct_predictions(reference, SAMPLE_ROWS)
    assert set(labels) == {0, 1}


# Azure ML style /score


def test_score_rows(client: httpx.Client, reference: ort.InferenceSession) -> None:
    response = client.post("/score", json={"data": SAMPLE_ROWS})
    assert response.status_code == 200
    assert response.json() == {"predictions": direct_predictions(reference, SAMPLE_ROWS)[0]}


def test_score_one_row(client: httpx.Client, reference: ort.InferenceSession) -> None:
    response = client.post("/score", json={"data": SAMPLE_ROWS[0]})
    assert response.json()["predictions"] == direct_predictions(reference, SAMPLE_ROWS[:1])[0]


def test_score_predict_proba(client: httpx.Client, reference: ort.InferenceSession) -> None:
    body = client.post("/score", json={"data": SAMPLE_ROWS, "method": "predict_proba"}).json()
    assert body["classes"] == [0, 1]
    expected = direct_predictions(reference, SAMPLE_ROWS)[1]
    assert np.allclose(body["predictions"], expected, atol=1e-6)


def test_score_named_records_in_any_key_order(client: httpx.Client, reference: ort.InferenceSession) -> None:
    records = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in SAMPLE_ROWS]
    response = client.post("/score", json={"data": records})
    assert response.json()["predictions"] == direct_predictions(reference, SAMPLE_ROWS)[0]
    one = client.post("/score", json={"data": records[0]})
    assert one.json()["predictions"] == direct_predictions(reference, SAMPLE_ROWS[:1])[0]


# SageMaker /ping and /invocations


def test_ping(client: httpx.Client) -> None:
    assert client.get("/ping").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": FEATURES, "data": SAMPLE_ROWS}},
        {"dataframe_split": {"columns": list(reversed(FEATURES)), "data": [row[::-1] for row in SAMPLE_ROWS]}},
        {"dataframe_records": [dict(zip(FEATURES, row, strict=True)) for row in SAMPLE_ROWS]},
        {"instances": SAMPLE_ROWS},
        {"inputs": SAMPLE_ROWS},
        {"inputs": {name: [row[i] for row in SAMPLE_ROWS] for i, name in enumerate(FEATURES)}},
        {"data": SAMPLE_ROWS},
    ],
    ids=["dataframe_split", "split_reordered", "dataframe_records", "instances", "inputs", "inputs_columns", "data"],
)
def test_invocations_json(client: httpx.Client, reference: ort.InferenceSession, body: dict) -> None:
    response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"predictions": direct_predictions(reference, SAMPLE_ROWS)[0]}


def _csv(rows: list[list[float]], header: list[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def test_invocations_csv_in_csv_out(client: httpx.Client, reference: ort.InferenceSession) -> None:
    response = client.post(
        "/invocations", content=_csv(SAMPLE_ROWS), headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    assert [int(line) for line in response.text.splitlines()] == direct_predictions(reference, SAMPLE_ROWS)[0]


def test_invocations_csv_with_header_in_any_order(client: httpx.Client, reference: ort.InferenceSession) -> None:
    body = _csv([row[::-1] for row in SAMPLE_ROWS], header=FEATURES[::-1])
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert response.json()["predictions"] == direct_predictions(reference, SAMPLE_ROWS)[0]


def test_invocations_csv_probabilities_by_custom_attribute(
    client: httpx.Client, reference: ort.InferenceSession
) -> None:
    response = client.post(
        "/invocations",
        content=_csv(SAMPLE_ROWS),
        headers={
            "Content-Type": "text/csv",
            "Accept": "text/csv",
            "X-Amzn-SageMaker-Custom-Attributes": "method=predict_proba",
        },
    )
    rows = [[float(v) for v in line.split(",")] for line in response.text.splitlines()]
    assert np.allclose(rows, direct_predictions(reference, SAMPLE_ROWS)[1], atol=1e-6)


def test_invocations_json_in_csv_out(client: httpx.Client, reference: ort.InferenceSession) -> None:
    response = client.post("/invocations", json={"instances": SAMPLE_ROWS}, headers={"Accept": "text/csv"})
    assert response.text.split() == [str(v) for v in direct_predictions(reference, SAMPLE_ROWS)[0]]


# Open Inference Protocol (KServe v2)


def test_v2_server_metadata_and_health(client: httpx.Client) -> None:
    assert client.get("/v2").json()["name"] == "mlserve"
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json()["ready"] is True
    assert client.get("/v2/models/weather-rain/ready").json() == {"name": "weather-rain", "ready": True}


def test_v2_model_metadata(client: httpx.Client) -> None:
    metadata = client.get("/v2/models/weather-rain").json()
    assert metadata["name"] == "weather-rain"
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 7]}]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    assert client.get("/v2/models/weather-rain/versions/1").json() == metadata


@pytest.mark.parametrize("path", ["/v2/models/weather-rain/infer", "/v2/models/weather-rain/versions/1/infer"])
def test_v2_infer(client: httpx.Client, reference: ort.InferenceSession, path: str) -> None:
    flat = [value for row in SAMPLE_ROWS for value in row]
    request = {"id": "req-7", "inputs": [{"name": "input", "shape": [3, 7], "datatype": "FP32", "data": flat}]}
    body = client.post(path, json=request).json()
    labels, probabilities = direct_predictions(reference, SAMPLE_ROWS)
    assert body["model_name"] == "weather-rain"
    assert body["model_version"] == "1"
    assert body["id"] == "req-7"
    label, proba = body["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [3], "data": labels}
    assert proba["datatype"] == "FP32"
    assert proba["shape"] == [3, 2]
    assert proba["data"] == pytest.approx([p for row in probabilities for p in row], abs=1e-6)


def test_v2_infer_nested_data_and_selected_output(client: httpx.Client, reference: ort.InferenceSession) -> None:
    request = {
        "inputs": [{"name": "input", "shape": [3, 7], "datatype": "FP64", "data": SAMPLE_ROWS}],
        "outputs": [{"name": "label"}],
    }
    body = client.post("/v2/models/weather-rain/infer", json=request).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]
    assert body["outputs"][0]["data"] == direct_predictions(reference, SAMPLE_ROWS)[0]


# API description


def test_openapi_describes_every_protocol(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ["/score", "/invocations", "/v2/models/{name}/infer", "/ping", "/v2/health/ready"]:
        assert path in schema["paths"], path
    assert "text/csv" in schema["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert client.get("/swagger.json").json()["paths"] == schema["paths"]
    assert "swagger-ui" in client.get("/docs").text


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/ping",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/weather-rain/ready",
        "/v2/models/weather-rain/versions/1/ready",
    ],
)
def test_health_routes_answer_head_without_a_body(client: httpx.Client, path: str) -> None:
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


def test_trailing_slash_redirect_is_relative_whatever_the_host_header(client: httpx.Client) -> None:
    response = client.get("/docs/?x=1", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/docs?x=1"
