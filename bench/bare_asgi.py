"""The floor for comparison: a bare ASGI app with the same model and no features (no auth, limits,
validation messages, metrics or logs). `bench/run.py --bare` measures it the same way."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson

_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
# The same file as the server (bench/run.py sets BENCH_MODEL): comparisons load one model.
_model = os.environ.get("BENCH_MODEL") or str(
    Path(__file__).resolve().parent.parent / "serving" / "model" / "model.onnx"
)
_session = ort.InferenceSession(_model, sess_options=_options)


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    rows = np.array(orjson.loads(body)["data"], dtype=np.float32)
    labels = _session.run(["label"], {"input": rows})[0]
    payload = orjson.dumps({"predictions": labels}, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
