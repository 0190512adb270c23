"""Inference routes as plans: parse the body, then `finish` (predict + encode) wherever it is cheapest.

Parsing is split from scoring so the front can decide, knowing the row count, whether scoring is
cheap enough to do on the event loop or must go to the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort

from serving.errors import InvalidInput, NotAcceptable, NotFound, UnsupportedMediaType
from serving.protocols import azureml, jsonbody, sagemaker, v2, v2_binary
from serving.runtime import ModelRefused, ModelRuntime, Prediction, Rows, UnsupportedMethod

JSON = b"application/json"
CSV = b"text/csv"
# What most clients send, answered without parsing the header.
_ACCEPTS_JSON = frozenset((b"*/*", JSON))


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()
    rows: int = 0
    scoring_seconds: float | None = None  # set once the request is scored
    # For payload capture (serving/capture.py): the scored rows, and the answer as `{"predictions": ...}`
    # JSON where the body is not that already (None: it is), or how to make it only if the request is sampled.
    inputs: Rows | None = None
    outputs: bytes | Callable[[], bytes] | None = None


@dataclass(slots=True)
class Call:
    body: bytes
    headers: dict[bytes, bytes]
    runtime: ModelRuntime
    max_rows: int


@dataclass(slots=True)
class Plan:
    """A parsed request: how many rows, and the rest of the work (predict + encode)."""

    rows: int
    finish: Callable[[ort.RunOptions | None], Reply]


Handler = Callable[[Call], Plan]


def _predict(runtime: ModelRuntime, rows: Rows, method: str, run_options: ort.RunOptions | None) -> Prediction:
    try:
        return runtime.predict(rows, probabilities=method == "predict_proba", run_options=run_options)
    except (UnsupportedMethod, ModelRefused) as error:
        raise InvalidInput(str(error)) from None


def json_only(headers: dict[bytes, bytes], route: str) -> None:
    """/score and v2 infer speak JSON only: say so (415/406) instead of failing to parse something else."""
    content_type = headers.get(b"content-type")
    if content_type is not None and content_type != JSON:
        kind = sagemaker.media_type(content_type.decode("latin-1"))
        # `curl -d` labels every body form-urlencoded; Azure ML clients rely on it, so it is read as JSON.
        if (
            kind
            and kind not in ("application/json", "application/x-www-form-urlencoded")
            and not kind.endswith("+json")
        ):
            hint = "; CSV goes to POST /invocations" if kind == "text/csv" else ""
            raise UnsupportedMediaType(f"{route} takes Content-Type: application/json, got {kind!r:.60}{hint}")
    accept = headers.get(b"accept")
    if (
        accept
        and accept not in _ACCEPTS_JSON
        and sagemaker.negotiate(accept.decode("latin-1"), ("application/json",)) is None
    ):
        raise NotAcceptable(
            f"{route} answers application/json only; the request accepts {accept.decode('latin-1')!r:.60}"
        )


def score(call: Call) -> Plan:
    runtime = call.runtime
    json_only(call.headers, "/score")
    rows, method = azureml.parse_score(call.body, runtime, call.max_rows)

    def finish(run_options: ort.RunOptions | None) -> Reply:
        prediction = _predict(runtime, rows, method, run_options)
        return Reply(200, jsonbody.predictions_body(runtime, prediction, method), rows=len(rows), inputs=rows)

    return Plan(len(rows), finish)


def invocations(call: Call) -> Plan:
    runtime, headers = call.runtime, call.headers
    as_csv = sagemaker.wants_csv(headers.get(b"accept", b"").decode("latin-1"))
    rows, method = sagemaker.parse_invocation(
        call.body,
        headers.get(b"content-type", b"").decode("latin-1"),
        headers.get(b"x-amzn-sagemaker-custom-attributes", b"").decode("latin-1"),
        runtime,
        call.max_rows,
    )

    def finish(run_options: ort.RunOptions | None) -> Reply:
        prediction = _predict(runtime, rows, method, run_options)
        if as_csv:
            as_json = lambda: jsonbody.predictions_body(runtime, prediction, method)  # noqa: E731
            return Reply(200, sagemaker.csv_body(prediction, method), CSV, rows=len(rows), inputs=rows, outputs=as_json)
        return Reply(200, jsonbody.predictions_body(runtime, prediction, method), rows=len(rows), inputs=rows)

    return Plan(len(rows), finish)


def v2_infer(name: str, version: str | None) -> Handler:
    def infer(call: Call) -> Plan:
        runtime, headers = call.runtime, call.headers
        check_model_address(runtime, name, version)
        header_length = headers.get(v2_binary.HEADER)
        if header_length is None or headers.get(b"content-type") != v2_binary.OCTET_STREAM:
            json_only(headers, "infer")
        request = v2.parse_infer(call.body, runtime, call.max_rows, header_length)
        rows = request.rows

        def finish(run_options: ort.RunOptions | None) -> Reply:
            try:
                results = runtime.run_outputs(rows, request.names, run_options)
            except ModelRefused as error:
                raise InvalidInput(str(error)) from None
            body, json_length = v2.infer_body(runtime, request.names, results, request.request_id, request.binary)
            outputs = lambda: _predictions_json(request.names, results)  # noqa: E731
            if json_length is None:
                return Reply(200, body, rows=len(rows), inputs=rows, outputs=outputs)
            length = (v2_binary.HEADER, str(json_length).encode())
            return Reply(200, body, v2_binary.OCTET_STREAM, (length,), rows=len(rows), inputs=rows, outputs=outputs)

        return Plan(len(rows), finish)

    return infer


def _predictions_json(names: list[str], results: list[Any]) -> bytes:
    """A v2 answer as capture records it: the first output as `predictions`, the others by name."""
    answer: dict[str, Any] = {"predictions": jsonbody.jsonable(results[0])}
    answer.update((name, jsonbody.jsonable(array)) for name, array in zip(names[1:], results[1:], strict=True))
    return jsonbody.dumps(answer)


def check_model_address(runtime: ModelRuntime, name: str, version: str | None) -> None:
    if name != runtime.name:
        raise NotFound(f"model '{name:.64}' not found; this server serves '{runtime.name}'")
    if version is not None and version != runtime.version:
        raise NotFound(
            f"version '{version:.64}' of model '{name}' not found; this server serves version '{runtime.version}'"
        )
