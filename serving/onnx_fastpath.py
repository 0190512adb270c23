"""onnxruntime's session binding, called directly: the one private onnxruntime hook of the server.

`InferenceSession.run` re-checks the feed's names on every call (and sets up WebGPU graph capture);
the server's feed is always the model's one input, so it calls the binding underneath, which a
single-row request notices (bench/README.md). `tests/test_private_hooks.py` fails when an upgrade
removes or changes it; without it the public method is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnxruntime as ort

Run = Callable[..., list[Any]]  # (output names, feed, run options or None) -> outputs


def session_run(session: ort.InferenceSession) -> Run:
    """`run(output_names, feed, run_options)`: the binding's, else the public method's."""
    binding: Run | None = getattr(getattr(session, "_sess", None), "run", None)
    return binding or session.run
