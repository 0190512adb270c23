"""Generated bodies for every parser: whatever a client sends, the answer is a result or a 4xx.

Runs the real handlers and the real model in process (the front maps RequestError to its status
and anything else to 500), so hypothesis can try thousands of bodies in seconds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import handlers
from serving.errors import RequestError
from serving.handlers import Call, Handler
from serving.runtime import ModelRuntime
from tests.conftest import DEMO_MODEL, FEATURES

RUNTIME = ModelRuntime(DEMO_MODEL, name="weather-rain", version="1")
WIDTH = len(FEATURES)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=9), st.dictionaries(st.sampled_from([*FEATURES, "x", "name"]), children, max_size=9)
    ),
    max_leaves=40,
)
row = st.lists(
    st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-1000, 1000), scalars),
    min_size=0,
    max_size=9,
)
rows = st.one_of(st.lists(row, max_size=5), row, json_values)
records = st.lists(st.dictionaries(st.sampled_from([*FEATURES, "extra"]), scalars, max_size=9), max_size=4)


def outcome(handler: Handler, body: bytes, headers: dict[bytes, bytes] | None = None) -> int:
    """The status the front would answer with; an exception other than RequestError fails the test."""
    call = Call(body, headers or {b"content-type": b"application/json"}, RUNTIME, max_rows=50)
    try:
        reply = handler(call).finish(None)
    except RequestError as error:
        status = error.status
    else:
        status = reply.status
    assert status == 200 or 400 <= status < 500
    return status


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=False).encode()


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(rows, records), st.sampled_from(["predict", "predict_proba", 1, None]))
def test_score_bodies(data: Any, method: Any) -> None:
    outcome(handlers.score, dumps({"data": data, "method": method}))


@FUZZ
@given(
    st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "data"]),
    st.one_of(
        rows, records, st.fixed_dictionaries({"columns": st.lists(st.sampled_from([*FEATURES, "x", 1])), "data": rows})
    ),
)
def test_invocation_json_bodies(key: str, value: Any) -> None:
    outcome(handlers.invocations, dumps({key: value}))


@FUZZ
@given(st.text(alphabet=st.sampled_from("0123456789.,-e\r\n\"' x\t"), max_size=300))
def test_invocation_csv_bodies(text: str) -> None:
    outcome(handlers.invocations, text.encode(), {b"content-type": b"text/csv", b"accept": b"text/csv"})


@FUZZ
@given(st.binary(max_size=200))
def test_invocation_csv_bytes(body: bytes) -> None:
    outcome(handlers.invocations, body, {b"content-type": b"text/csv"})


tensor = st.fixed_dictionaries(
    {"name": st.one_of(st.just("input"), json_values)},
    optional={
        "shape": st.one_of(st.lists(st.integers(-2, 60), max_size=3), json_values),
        "datatype": st.one_of(st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES"]), json_values),
        "data": st.one_of(rows, st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=21)),
    },
)


@FUZZ
@given(
    st.lists(tensor, max_size=2),
    st.one_of(st.none(), st.lists(st.fixed_dictionaries({"name": json_values}), max_size=3)),
    json_values,
)
def test_v2_infer_bodies(inputs: list, outputs: Any, request_id: Any) -> None:
    body: dict[str, Any] = {"inputs": inputs, "id": request_id}
    if outputs is not None:
        body["outputs"] = outputs
    outcome(handlers.v2_infer("weather-rain", None), dumps(body))


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_json(body: bytes) -> None:
    for handler in (handlers.score, handlers.invocations, handlers.v2_infer("weather-rain", None)):
        outcome(handler, body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [[true, 0.95, 10, 180, 3, 995, 2]]}',
        b'{"data": [{"Temperature_C": true, "Humidity": 0.95, "Wind_speed_kmph": 10, "Wind_bearing_degrees": 180,'
        b' "Visibility_km": 3, "Pressure_millibars": 995, "Current_weather_condition": 2}]}',
    ],
)
def test_booleans_are_not_numbers(body: bytes) -> None:
    assert outcome(handlers.score, body) == 400
