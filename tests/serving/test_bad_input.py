"""Bad requests are the client's error: a 4xx with a JSON body saying what and where, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import SAMPLE_ROWS
from tests.serving.models import linear_regressor

ROW = SAMPLE_ROWS[0]

JSON_CASES = [
    ("/score", b"{not json", 400, "not valid JSON"),
    ("/score", b"", 400, "empty"),
    ("/score", b"[1, 2]", 400, "JSON object"),
    ("/score", b'{"rows": []}', 400, "'data'"),
    ("/score", b'{"data": []}', 400, "no rows"),
    ("/score", b'{"data": [[1, 2, 3]]}', 400, "data[0]: expected 7 values, got 3"),
    ("/score", b'{"data": [[1, 2, 3, 4, 5, 6, 7], [1, 2]]}', 400, "data[1]: expected 7 values, got 2"),
    ("/score", b'{"data": [[1, 2, 3, "x", 5, 6, 7]]}', 400, "data[0][3]: expected a number"),
    ("/score", b'{"data": [[1, 2, 3, null, 5, 6, 7]]}', 400, "data[0][3]: expected a number"),
    ("/score", b'{"data": [[1, 2, 3, 4, 5, 6, 1e39]]}', 400, "data[0][6]"),
    ("/score", b'{"data": [[1, 2, 3, 4, 5, 6, NaN]]}', 400, "not valid JSON"),
    ("/score", b'{"data": "1,2,3"}', 400, "expected a list of rows"),
    ("/score", b'{"data": [[1,2,3,4,5,6,7]], "method": "explain"}', 400, "method"),
    ("/score", b'{"data": [{"Humidity": 0.5}]}', 400, "data[0]: missing Temperature_C"),
    (
        "/score",
        b'{"data": {"Temperature_C": 1, "Humidity": 1, "Wind_speed_kmph": 1, "Wind_bearing_degrees": 1, '
        b'"Visibility_km": 1, "Pressure_millibars": 1, "Current_weather_condition": 1, "Rain": 1}}',
        400,
        "unknown Rain",
    ),
    ("/invocations", b'{"instances": [[1]], "inputs": [[1]]}', 400, "exactly one of"),
    ("/invocations", b'{"dataframe_split": {"columns": ["a"], "data": [[1]]}}', 400, "unknown a"),
    ("/invocations", b'{"dataframe_split": [1, 2]}', 400, "dataframe_split"),
    ("/v2/models/weather-rain/infer", b'{"inputs": []}', 400, "exactly one tensor"),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "x", "shape": [1, 7], "datatype": "FP32", "data": [1,2,3,4,5,6,7]}]}',
        400,
        "expected 'input'",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [2, 7], "datatype": "FP32", "data": [1,2,3,4,5,6,7]}]}',
        400,
        "do not fill shape",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 6], "datatype": "FP32", "data": [1,2,3,4,5,6]}]}',
        400,
        "shape",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "BYTES", "data": ["a"]}]}',
        400,
        "datatype",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": [1,2,3,4,5,6,7]}], '
        b'"outputs": [{"name": "nope"}]}',
        400,
        "unknown nope",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": ["FP32"], "data": [1,2,3,4,5,6,7]}]}',
        400,
        "inputs[0].datatype: this model takes FP32",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": [1,2,3,4,5,6,7]}], "outputs": []}',
        400,
        "outputs: name at least one of label, probabilities",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": [1,2,3,4,5,6,7]}], '
        b'"outputs": [{"name": "label"}, {"name": "label"}]}',
        400,
        "once",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": [true,0.95,10,180,3,995,2]}]}',
        400,
        "true/false are not numbers",
    ),
    (
        "/v2/models/weather-rain/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "BOOL", "data": [1,2,3,4,5,6,7]}]}',
        400,
        "this model takes FP32",
    ),
    ("/score", b'{"data": [[true, 0.95, 10, 180, 3, 995, 2]]}', 400, "data[0][0]: expected a number, got True"),
    ("/invocations", b'{"instances": [[1, 0.95, 10, 180, false, 995, 2]]}', 400, "instances[0][4]: expected a number"),
    ("/v2/models/other/infer", b"{}", 404, "model 'other' not found"),
    ("/v2/models/weather-rain/versions/9/infer", b"{}", 404, "version '9'"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), JSON_CASES)
def test_bad_json_requests(client: httpx.Client, path: str, body: bytes, status: int, message: str) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


CSV_CASES = [
    ("1,2,3\n", "CSV row 1: expected 7 values, got 3"),
    ("1,2,3,4,5,6,7\n1,2,3,x,5,6,7\n", "CSV row 2, column 4"),
    ("1,2,3,4,5,6,nan\n", "NaN"),
    ("\n\n", "no rows"),
    ("Temperature_C,Humidity\n1,2\n", "CSV header: missing Wind_speed_kmph"),
    ("1,2,3,4,5,6," + "7" * 200_000 + "\n", "CSV line 1: field larger than field limit"),
]


@pytest.mark.parametrize(("body", "message"), CSV_CASES)
def test_bad_csv_requests(client: httpx.Client, body: str, message: str) -> None:
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_non_utf8_csv(client: httpx.Client) -> None:
    response = client.post("/invocations", content=b"\xff\xfe1,2", headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]


def test_wrong_content_type(client: httpx.Client) -> None:
    response = client.post("/invocations", content=b"<rows/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415
    assert "application/json or text/csv" in response.json()["error"]


def test_unacceptable_response_type(client: httpx.Client) -> None:
    response = client.post("/invocations", json={"instances": [ROW]}, headers={"Accept": "application/xml"})
    assert response.status_code == 406


def test_too_many_rows(client: httpx.Client) -> None:
    response = client.post("/score", json={"data": [ROW] * 10_001})
    assert response.status_code == 400
    assert "limit of 10000 rows" in response.json()["error"]


def test_unknown_model_metadata(client: httpx.Client) -> None:
    response = client.get("/v2/models/other")
    assert response.status_code == 404
    assert "this server serves 'weather-rain'" in response.json()["error"]


def test_unknown_route_is_json_404(client: httpx.Client) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]


def test_wrong_method(client: httpx.Client) -> None:
    assert client.get("/score").status_code == 405


def test_values_near_the_float32_limit_are_scored_and_values_beyond_it_are_named() -> None:
    from serving.errors import InvalidInput
    from serving.protocols.tabular import numeric_rows

    # Finite values whose sum overflows float32 are still valid input.
    near_limit = numeric_rows([[3e38, 3e38, 3e38, -3e38, 1, 1, 1]], 7, 10, "data")
    assert near_limit[0, 0] == pytest.approx(3e38, rel=1e-6)
    with pytest.raises(InvalidInput, match=r"data\[1\]\[2\]: value is NaN, infinite or too large"):
        numeric_rows([[1, 1, 1, 1, 1, 1, 1], [3e38, -3e38, 1e39, 1, 1, 1, 1]], 7, 10, "data")
    # An integer beyond any float (not from JSON, whose parser refuses it, but from Python callers).
    with pytest.raises(InvalidInput, match=r"data\[0\]\[1\]: 1000.* is not a finite float32 number"):
        numeric_rows([[1, 10**400, 1, 1, 1, 1, 1]], 7, 10, "data")
    with pytest.raises(InvalidInput, match=r"data\[0\]\[0\]: expected a number, got True"):
        numeric_rows([[True, 1, 1, 1, 1, 1, 1]], 7, 10, "data")


def test_csv_with_bare_cr_line_ends_is_scored(client: httpx.Client) -> None:
    body = "\r".join(",".join(map(str, r)) for r in SAMPLE_ROWS) + "\r"
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.text.split() == ["1", "0", "1"]


def test_csv_row_limit_stops_reading_early(client: httpx.Client) -> None:
    body = (",".join(map(str, ROW)) + "\n") * 20_000
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    assert "the limit is 10000 rows per request" in response.json()["error"]


def test_accept_quality_zero_refuses_csv(client: httpx.Client) -> None:
    headers = {"Accept": "text/csv;q=0, application/json"}
    response = client.post("/invocations", json={"instances": [ROW]}, headers=headers)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["predictions"] == [1]
    only_csv_refused = client.post("/invocations", json={"instances": [ROW]}, headers={"Accept": "text/csv;q=0"})
    assert only_csv_refused.status_code == 406


def test_score_takes_json_only(client: httpx.Client) -> None:
    csv_body = client.post("/score", content="1,2,3", headers={"Content-Type": "text/csv"})
    assert csv_body.status_code == 415
    assert "CSV goes to POST /invocations" in csv_body.json()["error"]
    wants_csv = client.post("/score", json={"data": [ROW]}, headers={"Accept": "text/csv"})
    assert wants_csv.status_code == 406
    # `curl -d` without a Content-Type sends form-urlencoded; Azure ML clients rely on it.
    curl_default = client.post(
        "/score",
        content=b'{"data": [[5, 0.95, 10, 180, 3, 995, 2]]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert curl_default.json() == {"predictions": [1]}


V2_DATATYPE_CASES = [
    ("INT64", "5.5", "5.5 is not an integer, as INT64 requires"),
    ("INT8", "500", "500 is outside INT8's range (-128 to 127)"),
    ("UINT8", "-5", "-5 is outside UINT8's range (0 to 255)"),
    ("FP16", "70000", "70000 is beyond FP16's range (±65504); declare FP32"),
]


@pytest.mark.parametrize(("datatype", "value", "message"), V2_DATATYPE_CASES)
def test_v2_values_must_fit_their_declared_datatype(
    client: httpx.Client, datatype: str, value: str, message: str
) -> None:
    body = (
        f'{{"inputs": [{{"name": "input", "shape": [1, 7], "datatype": "{datatype}", "data": [1,1,1,1,1,1,{value}]}}]}}'
    )
    response = client.post("/v2/models/weather-rain/infer", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == f"inputs[0] (input): {message}"


def test_v2_integer_datatypes_in_range_are_scored(client: httpx.Client) -> None:
    body = '{"inputs": [{"name": "input", "shape": [1, 7], "datatype": "INT64", "data": [5, 1, 10, 180, 3, 995, 2]}]}'
    response = client.post("/v2/models/weather-rain/infer", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def unnamed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A model without feature_names metadata: its columns have no names to match."""
    from starlette.testclient import TestClient

    from serving.app import create_app, load_runtime
    from serving.settings import Settings

    path = linear_regressor(tmp_path_factory.mktemp("unnamed") / "model.onnx", [1.0, 10.0, 100.0], 0.0)
    settings = Settings(model=path, access_log=False)
    app = create_app(settings, load_runtime(settings))
    http = TestClient(app, base_url="http://testserver")
    yield http
    http.close()
    app.pool.shutdown()


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["c", "b", "a"], "data": [[3, 2, 1]]}},
        {"dataframe_split": {"columns": ["x", "x", "x"], "data": [[1, 2, 3]]}},
        {"inputs": {"c": [3], "b": [2], "a": [1]}},
    ],
)
def test_names_a_model_cannot_check_are_refused_not_scored_in_the_order_sent(
    unnamed: httpx.Client, body: dict[str, object]
) -> None:
    response = unnamed.post("/invocations", json=body)
    assert response.status_code == 400, response.text
    assert "no feature_names metadata" in response.json()["error"]
    # The same rows without names are scored, in the model's column order.
    plain = unnamed.post("/invocations", json={"instances": [[1, 2, 3]]})
    assert plain.json() == {"predictions": [321.0]}


def test_a_body_with_more_values_than_the_row_limit_can_need_is_refused_before_parsing(client: httpx.Client) -> None:
    """Millions of tiny values in a few MB would hold the interpreter for seconds while parsed."""
    body = b'{"data":[' + b",".join([b"{}"] * 200_000) + b"]}"
    response = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body holds 200000 or more values, more than 10000 rows of 7")
    valid = b'{"data":[' + b",".join([b"[5,0.95,10,180,3,995,2]"] * 10_000) + b"]}"
    assert client.post("/score", content=valid, headers={"Content-Type": "application/json"}).status_code == 200
