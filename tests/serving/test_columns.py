"""A model with one input per named, typed column (bank-marketing-like: numbers, a count, text), served
through every protocol and compared with the scikit-learn pipeline it was exported from."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.serving.models import BANK_COLUMNS, bank_frame, bank_model, flagged_regressor
from tests.serving.server import REPO, base_env

KEY = "columns-key-0123456789abcdef"


def in_process(model: Path) -> Iterator[httpx.Client]:
    from pydantic import SecretStr
    from starlette.testclient import TestClient

    from serving.app import create_app, load_runtime
    from serving.settings import Settings

    settings = Settings(model=model, api_keys=(SecretStr(KEY),), access_log=False)
    app = create_app(settings, load_runtime(settings))
    http = TestClient(app, base_url="http://testserver", headers={"Authorization": f"Bearer {KEY}"})
    yield http
    http.close()
    app.pool.shutdown()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, pd.DataFrame]:
    frame = bank_frame()
    path, pipeline = bank_model(tmp_path_factory.mktemp("bank") / "bank.onnx", frame)
    return path, pipeline, frame.head(40)


@pytest.fixture(scope="module")
def client(bank: tuple[Path, Any, pd.DataFrame]) -> Iterator[httpx.Client]:
    yield from in_process(bank[0])


def json_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as a client sends them: numbers, integers, text; a missing number as null."""
    rows = frame.to_dict("split")["data"]
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(frame.columns, row, strict=True)) for row in json_rows(frame)]


def expected(bank: tuple[Path, Any, pd.DataFrame]) -> tuple[list[str], np.ndarray]:
    _, pipeline, frame = bank
    return pipeline.predict(frame).tolist(), pipeline.predict_proba(frame)


def test_score_rows_and_records_match_the_pipeline(client: httpx.Client, bank: Any) -> None:
    labels, probabilities = expected(bank)
    frame = bank[2]
    assert client.post("/score", json={"data": json_rows(frame)}).json() == {"predictions": labels}
    # Records in any key order, and one record alone.
    shuffled = [dict(reversed(list(r.items()))) for r in records(frame)]
    assert client.post("/score", json={"data": shuffled}).json() == {"predictions": labels}
    assert client.post("/score", json={"data": records(frame)[0]}).json() == {"predictions": labels[:1]}
    answer = client.post("/score", json={"data": json_rows(frame), "method": "predict_proba"}).json()
    assert answer["classes"] == ["no", "yes"]  # from the graph: the model has no class_labels metadata
    assert np.allclose(answer["predictions"], probabilities, atol=1e-5)


def _invocation_bodies(frame: pd.DataFrame) -> dict[str, Any]:
    reordered = frame[BANK_COLUMNS[::-1]]
    return {
        "dataframe_split": {"dataframe_split": {"columns": list(reordered.columns), "data": json_rows(reordered)}},
        "dataframe_records": {"dataframe_records": records(reordered)},
        "instances": {"instances": json_rows(frame)},
        "instances as records": {"instances": records(reordered)},
        "inputs by column": {"inputs": {c: [r[c] for r in records(frame)] for c in BANK_COLUMNS[::-1]}},
        "inputs as rows": {"inputs": json_rows(frame)},
    }


@pytest.mark.parametrize("shape", list(_invocation_bodies(bank_frame().head(2))))
def test_invocations_json_maps_columns_by_name(client: httpx.Client, bank: Any, shape: str) -> None:
    body = _invocation_bodies(bank[2])[shape]
    response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(bank)[0]}


def _csv(rows: list[list[Any]], header: list[str] | None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def test_invocations_csv_with_a_header_in_any_order_and_without(client: httpx.Client, bank: Any) -> None:
    labels, _ = expected(bank)
    frame = bank[2]
    reordered = frame[BANK_COLUMNS[::-1]]
    for text in (_csv(json_rows(reordered), list(reordered.columns)), _csv(json_rows(frame), None)):
        response = client.post("/invocations", content=text, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
        assert response.status_code == 200, response.text
        assert response.text.split() == labels


def test_v2_metadata_lists_each_column_and_infer_takes_one_tensor_each(client: httpx.Client, bank: Any) -> None:
    metadata = client.get("/v2/models/bank").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("age", "FP32", [-1, 1]),
        ("campaign", "INT64", [-1, 1]),
        ("job", "BYTES", [-1, 1]),
        ("marital", "BYTES", [-1, 1]),
        ("education", "BYTES", [-1, 1]),
        ("balance", "FP32", [-1, 1]),
    ]
    frame = bank[2]
    cells = records(frame)
    datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    inputs = [
        {"name": c, "datatype": datatypes[c], "shape": [len(frame), 1], "data": [r[c] for r in cells]}
        for c in reversed(BANK_COLUMNS)
    ]
    response = client.post("/v2/models/bank/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    labels, probabilities = expected(bank)
    assert outputs["label"]["data"] == labels
    assert np.allclose(np.reshape(outputs["probabilities"]["data"], (-1, 2)), probabilities, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"data": [[40.0, 2, 7, "married", "primary", 10.0]]}, 400, ["column 'job'", "a string", "tensor(string)"]),
        ({"data": [[40.0, 2.5, "admin.", "married", "primary", 10.0]]}, 400, ["column 'campaign'", "an integer"]),
        ({"data": [["forty", 2, "admin.", "married", "primary", 10.0]]}, 400, ["column 'age'", "a number"]),
        ({"data": [[40.0, 2, "admin.", "married", "primary"]]}, 400, ["expected 6 values", "age, campaign, job"]),
        ({"data": [[1e39, 2, "admin.", "married", "primary", 10.0]]}, 400, ["column 'age'", "beyond tensor(float)"]),
        ({"data": [{"age": 40.0, "campaign": 2, "job": "admin.", "marital": "single", "balance": 1.0}]}, 400,
         ["missing education"]),
        ({"data": [[40.0, 2, "astronaut", "married", "primary", 10.0]]}, 400,
         ["column 'job'", "unknown category 'astronaut'", "admin.", "handle_unknown"]),
    ],
)  # fmt: skip
def test_bad_values_are_400_naming_the_column_and_type(
    client: httpx.Client, body: dict[str, Any], status: int, words: list[str]
) -> None:
    response = client.post("/score", json=body)
    assert response.status_code == status
    assert all(word in response.json()["error"] for word in words), response.json()


def test_bad_values_in_csv_and_v2_name_the_column(client: httpx.Client) -> None:
    text = _csv([[40.0, "two", "admin.", "married", "primary", 10.0]], None)
    csv_error = client.post("/invocations", content=text, headers={"Content-Type": "text/csv"})
    assert csv_error.status_code == 400
    assert "column 'campaign' takes an integer" in csv_error.json()["error"]
    inputs = [{"name": c, "datatype": "FP32", "shape": [1], "data": [1.0]} for c in BANK_COLUMNS if c != "campaign"]
    inputs.append({"name": "campaign", "datatype": "INT64", "shape": [1, 1], "data": [[1]]})
    v2_error = client.post("/v2/models/bank/infer", json={"inputs": inputs})
    assert v2_error.status_code == 400
    assert "column 'job'" in v2_error.json()["error"]
    assert "send BYTES" in v2_error.json()["error"]


def test_openapi_describes_the_columns(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    record = document["components"]["schemas"]["ModelRecord"]
    assert record["required"] == BANK_COLUMNS
    assert record["properties"]["job"]["type"] == "string"
    assert "admin." in record["properties"]["job"]["enum"]
    assert record["properties"]["campaign"]["type"] == "integer"
    body = document["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "#/components/schemas/ModelRow" in str(body)


def test_boolean_columns_and_one_dimensional_inputs(tmp_path: Path) -> None:
    for client in in_process(flagged_regressor(tmp_path / "flagged.onnx")):
        answer = client.post("/score", json={"data": [{"x": 1.5, "flag": True}, {"flag": False, "x": 2.0}]})
        assert answer.json() == {"predictions": [11.5, 2.0]}
        wrong = client.post("/score", json={"data": [[1.5, 1]]})
        assert wrong.status_code == 400
        assert "column 'flag' takes true or false" in wrong.json()["error"]
        csv_body = client.post("/invocations", content="flag,x\ntrue,1\n0,3\n", headers={"Content-Type": "text/csv"})
        assert csv_body.json() == {"predictions": [11.0, 3.0]}


def _batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", "batch", *args],
        cwd=REPO,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_batch_scores_typed_columns_by_name_and_sets_bad_rows_aside(tmp_path: Path, bank: Any, suffix: str) -> None:
    path, pipeline, frame = bank
    source = frame[BANK_COLUMNS[::-1]].assign(customer=[f"c{i}" for i in range(len(frame))])
    source.loc[3, "job"] = "astronaut"  # refused by the encoder: set aside, the rest scored
    if suffix == "csv":
        source.to_csv(tmp_path / "in.csv", index=False)
    else:
        source.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / f"out.{suffix}"
    result = _batch("--model", str(path), "--input", str(tmp_path / f"in.{suffix}"), "--output", str(out),
                    "--on-error", "skip")  # fmt: skip
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    kept = frame.drop(index=3)
    assert scored["customer"].tolist() == [f"c{i}" for i in range(len(frame)) if i != 3]
    assert scored["prediction"].tolist() == pipeline.predict(kept).tolist()
    errors = pd.read_csv(tmp_path / "out.errors.csv")
    assert errors["row"].tolist() == [4]
    assert "column 'job': unknown category 'astronaut'" in errors["error"][0]


def test_the_stacks_sample_row_is_one_the_typed_model_answers(client: httpx.Client, bank: Any) -> None:
    from stacks.model_source import sample_row

    row = sample_row(bank[0])  # no sample_input metadata: per column a zero or a category the encoder knows
    assert row == [0.0, 0, "admin.", "divorced", "", 0.0]
    assert client.post("/score", json={"data": [row]}).status_code == 200
    csv_line = client.post("/invocations", content=_csv([row], None), headers={"Content-Type": "text/csv"})
    assert csv_line.status_code == 200


def test_tritonclient_sends_text_columns_as_binary_bytes(tmp_path: Path, bank: Any) -> None:
    """tritonclient's default: every tensor binary, BYTES as length-prefixed strings."""
    import tritonclient.http as triton

    from tests.serving.server import running_server

    path, pipeline, frame = bank
    complete = frame.fillna({"age": 40.0})
    kinds = {"BYTES": np.object_, "FP32": np.float32, "INT64": np.int64}
    with (
        running_server(tmp_path, args=["--model", str(path)]) as server,
        triton.InferenceServerClient(server.url.removeprefix("http://")) as client,
    ):
        tensors = []
        for spec in client.get_model_metadata("bank")["inputs"]:
            array = complete[[spec["name"]]].to_numpy().astype(kinds[spec["datatype"]])
            tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
            tensor.set_data_from_numpy(array, binary_data=True)
            tensors.append(tensor)
        result = client.infer("bank", tensors)
    assert [label.decode() for label in result.as_numpy("label").tolist()] == pipeline.predict(complete).tolist()


def test_binary_text_that_does_not_add_up_is_a_400_naming_the_column(client: httpx.Client) -> None:
    row = {"age": 40.0, "campaign": 2, "job": "admin.", "marital": "single", "education": "primary", "balance": 1.0}
    datatypes = {"age": "FP32", "campaign": "INT64", "balance": "FP32"}
    inputs: list[dict[str, Any]] = [
        {"name": c, "datatype": datatypes.get(c, "BYTES"), "shape": [1, 1], "data": [row[c]]} for c in BANK_COLUMNS
    ]
    job = inputs[BANK_COLUMNS.index("job")]
    del job["data"]
    job["parameters"] = {"binary_data_size": 7}  # a length prefix of 6, but only 3 bytes follow
    header = json.dumps({"inputs": inputs}).encode()
    response = client.post(
        "/v2/models/bank/infer",
        content=header + b"\x06\x00\x00\x00adm",
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "(job)" in response.json()["error"]
    assert "do not hold exactly 1 length-prefixed strings" in response.json()["error"]
