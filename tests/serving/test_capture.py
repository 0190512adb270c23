"""Payload capture by the real server into Azurite: SageMaker Data Capture's layout, the excluded column
absent, serving unharmed by an unreachable store, and nothing lost on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.azurite import Azurite, running_azurite
from tests.conftest import FEATURES, SAMPLE_ROWS
from tests.serving.server import free_port, running_server

CONTAINER = "capture"
BLOB_NAME = re.compile(r"^capture/rain-endpoint/1/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl$")
EXCLUDED = "Humidity"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with running_azurite(tmp_path_factory.mktemp("azurite")) as running:
        from azure.storage.blob import ContainerClient

        ContainerClient.from_connection_string(running.connection_string, CONTAINER).create_container()
        yield running


def capture_env(connection: str, **extra: str) -> dict[str, str]:
    return {
        "SERVING_CAPTURE_PERCENT": "100",
        "SERVING_CAPTURE_CONNECTION_STRING": connection,
        "SERVING_CAPTURE_CONTAINER": CONTAINER,
        "SERVING_CAPTURE_ENDPOINT": "rain-endpoint",
        "SERVING_CAPTURE_EXCLUDE": EXCLUDED,
        **extra,
    }


def captured(azurite: Azurite) -> dict[str, bytes]:
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(azurite.connection_string, CONTAINER)
    return {blob.name: container.download_blob(blob.name).readall() for blob in container.list_blobs()}


def records(blobs: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """Every captured record, by request id."""
    found = {}
    for data in blobs.values():
        for line in data.decode().splitlines():
            record = json.loads(line)
            found[record["eventMetadata"]["eventId"]] = record
    return found


def wait_for(azurite: Azurite, ids: set[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = records(captured(azurite))
        if ids <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def metric(url: str, outcome: str) -> float:
    text = httpx.get(url + "/metrics").text
    match = re.search(rf'^mlserve_capture_records_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_records_land_in_sagemakers_layout_without_the_excluded_column(azurite: Azurite, tmp_path: Path) -> None:
    env = capture_env(azurite.connection_string, SERVING_CAPTURE_BATCH_SECONDS="0.2", SERVING_WORKERS="1")
    with running_server(tmp_path, env=env) as server:
        answers = {}
        score = httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS[:2]}, headers={"x-request-id": "score-1"})
        answers["score-1"] = score.json()
        proba = httpx.post(
            server.url + "/score",
            json={"data": [SAMPLE_ROWS[2]], "method": "predict_proba"},
            headers={"x-request-id": "proba-1"},
        )
        answers["proba-1"] = proba.json()
        csv = httpx.post(
            server.url + "/invocations",
            content="\n".join(",".join(map(str, row)) for row in SAMPLE_ROWS).encode(),
            headers={"content-type": "text/csv", "accept": "text/csv", "x-request-id": "csv-1"},
        )
        assert csv.status_code == 200, csv.text
        v2 = httpx.post(
            server.url + "/v2/models/weather-rain/infer",
            json={"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": SAMPLE_ROWS[0]}]},
            headers={"x-request-id": "v2-1"},
        )
        assert v2.status_code == 200, v2.text
        answers["v2-1"] = v2.json()
        refused = httpx.post(server.url + "/score", json={"data": [[1.0]]}, headers={"x-request-id": "bad-1"})
        assert refused.status_code == 400
        found = wait_for(azurite, {"score-1", "proba-1", "csv-1", "v2-1"})

    assert {"score-1", "proba-1", "csv-1", "v2-1"} <= found.keys()
    assert "bad-1" not in found  # only scored requests are captured
    assert all(BLOB_NAME.match(name) for name in captured(azurite)), list(captured(azurite))
    record = found["score-1"]
    assert record["eventVersion"] == "0"
    assert record["eventMetadata"]["modelName"] == "weather-rain"
    assert record["eventMetadata"]["modelVersion"] == "1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventMetadata"]["inferenceTime"])
    endpoint_input = record["captureData"]["endpointInput"]
    assert {k: v for k, v in endpoint_input.items() if k != "data"} == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "encoding": "JSON",
    }
    kept = [name for name in FEATURES if name != EXCLUDED]
    frame = json.loads(endpoint_input["data"])["dataframe_split"]
    assert frame["columns"] == kept
    assert frame["data"] == [
        [v for name, v in zip(FEATURES, row, strict=True) if name != EXCLUDED] for row in SAMPLE_ROWS[:2]
    ]
    endpoint_output = record["captureData"]["endpointOutput"]
    assert (endpoint_output["mode"], endpoint_output["encoding"]) == ("OUTPUT", "JSON")
    assert json.loads(endpoint_output["data"]) == answers["score-1"]
    assert json.loads(found["proba-1"]["captureData"]["endpointOutput"]["data"]) == answers["proba-1"]
    # A CSV answer is captured in the JSON form, so one reader handles every route.
    assert len(json.loads(found["csv-1"]["captureData"]["endpointOutput"]["data"])["predictions"]) == 3
    v2_outputs = {o["name"]: o["data"] for o in answers["v2-1"]["outputs"]}
    v2_captured = json.loads(found["v2-1"]["captureData"]["endpointOutput"]["data"])
    label, *others = list(v2_outputs)
    assert v2_captured["predictions"] == v2_outputs[label]
    # v2 flattens each output; capture keeps its rows (probabilities: one list per row).
    flat = {name: [v for row in v2_captured[name] for v in row] for name in others}
    assert flat == {name: v2_outputs[name] for name in others}


def test_captured_input_replays_on_invocations(azurite: Azurite, tmp_path: Path) -> None:
    """The input string is exactly MLflow's `dataframe_split` body: a reader can replay it as it is."""
    env = capture_env(azurite.connection_string, SERVING_CAPTURE_BATCH_SECONDS="0.2", SERVING_WORKERS="1")
    env["SERVING_CAPTURE_EXCLUDE"] = ""
    with running_server(tmp_path, env=env) as server:
        first = httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"x-request-id": "replay-1"})
        record = wait_for(azurite, {"replay-1"})["replay-1"]
        again = httpx.post(
            server.url + "/invocations",
            content=record["captureData"]["endpointInput"]["data"],
            headers={"content-type": "application/json"},
        )
    assert again.status_code == 200
    assert again.json() == first.json()


def test_unreachable_store_costs_no_answers_and_memory_stays_bounded(tmp_path: Path) -> None:
    from tests.azurite import connection_string

    nowhere = connection_string(free_port())  # nothing listens there
    env = capture_env(
        nowhere,
        SERVING_CAPTURE_BATCH_SECONDS="0.2",
        SERVING_CAPTURE_MAX_PENDING_BYTES=str(256 * 1024),
        SERVING_WORKERS="1",
    )
    with running_server(tmp_path, env=env) as server:
        process = psutil.Process(server.process.pid)
        body = {"data": SAMPLE_ROWS}
        with httpx.Client(base_url=server.url) as http:
            for _ in range(500):
                assert http.post("/score", json=body).status_code == 200
            warm = process.memory_info().rss
            for _ in range(3000):
                assert http.post("/score", json=body).status_code == 200
            grown = process.memory_info().rss - warm
            dropped = metric(server.url, "dropped")
        log = server.log()
    # 3,500 records of about 500 bytes each would hold 1.7 MB: most must have been dropped, not held.
    assert dropped > 2000, dropped
    assert grown < 8 * 1024 * 1024, grown
    assert "capture: upload failed, retrying" in log
    assert "capture: dropping records" in log
    assert "Connection refused" in log  # the log says why
    assert "Traceback" not in log


def test_sigterm_flushes_every_pending_record(azurite: Azurite, tmp_path: Path) -> None:
    # Batches would wait an hour: only the shutdown flush can upload them.
    env = capture_env(azurite.connection_string, SERVING_CAPTURE_BATCH_SECONDS="3600", SERVING_WORKERS="2")
    env["SERVING_CAPTURE_ENDPOINT"] = "flush-endpoint"
    sent = set()
    with running_server(tmp_path, env=env) as server:
        with httpx.Client(base_url=server.url) as http:
            for number in range(400):
                request_id = f"flush-{number}"
                answer = http.post(
                    "/score", json={"data": [SAMPLE_ROWS[number % 3]]}, headers={"x-request-id": request_id}
                )
                assert answer.status_code == 200
                sent.add(request_id)
        assert not any(name.startswith("capture/flush-endpoint/") for name in captured(azurite))
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        took = time.monotonic() - started
    found = {rid for rid in records(captured(azurite)) if rid.startswith("flush-")}
    assert found == sent
    assert took < 2.0 + 20.0  # the shutdown delay plus the drain timeout


class FlakyStore:
    """Refuses the first `refusals` writes as Azure does while a new role assignment propagates (403)."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.blobs: dict[str, bytes] = {}

    def upload(self, name: str, data: bytes) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise PermissionError("403 AuthorizationPermissionMismatch")
        self.blobs[name] = data


def test_writes_refused_while_the_role_propagates_are_retried_and_none_lost() -> None:
    import numpy as np

    from serving.capture import Capture
    from serving.capture_format import RecordFormat

    store = FlakyStore(refusals=2)
    capture = Capture(
        store,
        RecordFormat(FEATURES, (), "weather-rain", "1"),
        percent=100,
        prefix="capture",
        endpoint="rain",
        batch_records=50,
        batch_seconds=0.05,
        max_pending_bytes=1024 * 1024,
    )
    rows = np.array(SAMPLE_ROWS[:1], dtype=np.float32)
    for number in range(120):
        capture.offer(f"r{number}", rows, b'{"predictions":[1]}')
    deadline = time.monotonic() + 10  # the backoff after two refusals: 1 s, then 2 s
    while capture.uploaded < 120 and time.monotonic() < deadline:
        time.sleep(0.05)
    capture.close(time.monotonic() + 5)
    lines = [json.loads(line) for data in store.blobs.values() for line in data.splitlines()]
    assert sorted(r["eventMetadata"]["eventId"] for r in lines) == sorted(f"r{n}" for n in range(120))
    assert (capture.uploaded, capture.dropped, capture.pending_bytes) == (120, 0, 0)


def test_a_misspelt_excluded_column_stops_the_server_at_start(tmp_path: Path) -> None:
    """Capturing the very column meant to be left out is worse than not starting: the typo is named."""
    env = capture_env("UseDevelopmentStorage=true", SERVING_CAPTURE_EXCLUDE="Humidty", SERVING_WORKERS="1")
    refused = pytest.raises(RuntimeError, match="SERVING_CAPTURE_EXCLUDE names Humidty, not columns of this model")
    with refused, running_server(tmp_path, env=env, timeout=30):
        pass


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"capture_percent": 10}, "set SERVING_CAPTURE_CONTAINER and SERVING_CAPTURE_ACCOUNT_URL"),
        ({"capture_percent": 10, "capture_container": "cap--ture", "capture_account_url": "https://a.example"}, "--"),
        ({"capture_percent": 101}, "less than or equal to 100"),
    ],
)
def test_capture_settings_that_cannot_work_are_refused_in_words(settings: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from serving.settings import Settings, describe_settings_error

    with pytest.raises(ValidationError) as refused:
        Settings(**settings)
    assert message in describe_settings_error(refused.value)


def test_a_model_with_text_columns_is_captured_by_column_name(azurite: Azurite, tmp_path: Path) -> None:
    """Typed columns (text among them) are recorded as the values sent, under the model's column names,
    and the drift report's reader reads them back as the server would."""
    from serving.drift.records import parse_contents
    from serving.runtime import ModelRuntime
    from tests.serving.models import BANK_COLUMNS, bank_frame, bank_model

    frame = bank_frame().head(3)
    model, _ = bank_model(tmp_path / "bank.onnx", bank_frame())
    rows = [
        [None if isinstance(v, float) and v != v else v for v in row] for row in frame.astype(object).values.tolist()
    ]
    env = capture_env(azurite.connection_string, SERVING_CAPTURE_BATCH_SECONDS="0.2", SERVING_WORKERS="1")
    env["SERVING_CAPTURE_EXCLUDE"] = "balance"
    env["SERVING_CAPTURE_ENDPOINT"] = "bank-endpoint"
    with running_server(tmp_path, args=["--model", str(model)], env=env) as server:
        answer = httpx.post(server.url + "/score", json={"data": rows}, headers={"x-request-id": "bank-1"})
        assert answer.status_code == 200, answer.text
        record = wait_for(azurite, {"bank-1"})["bank-1"]

    data = json.loads(record["captureData"]["endpointInput"]["data"])["dataframe_split"]
    kept = [name for name in BANK_COLUMNS if name != "balance"]
    assert data["columns"] == kept
    sent = [dict(zip(BANK_COLUMNS, row, strict=True)) for row in rows]
    assert [row[kept.index("job")] for row in data["data"]] == [r["job"] for r in sent]
    assert json.loads(record["captureData"]["endpointOutput"]["data"]) == answer.json()
    # The report reads the same body through the server's parsers (with every column, as a capture
    # without exclusions writes it): one row per request row, text kept as text.
    full = {**record["captureData"]}
    full["endpointInput"] = {
        **full["endpointInput"],
        "data": json.dumps({"dataframe_split": {"columns": list(BANK_COLUMNS), "data": rows}}),
    }
    matrix, predictions = parse_contents(full, ModelRuntime(model))
    assert matrix.shape == (3, len(BANK_COLUMNS))
    assert list(matrix[:, BANK_COLUMNS.index("job")]) == [r["job"] for r in sent]
    assert predictions is not None
    assert len(predictions) == 3
