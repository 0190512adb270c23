"""The model check a multi-worker server's parent runs in a child process.

The parent only supervises: loading the model there (to fail fast, before binding the port) kept
onnxruntime, numpy and the model in a process that never serves (108 MB against uvicorn's own
29 MB; bench/README.md). A child loads and warms it up the same way and exits, handing back the
model's name and version, or the one line that says why it cannot be served.

The child takes the validated settings as the workers do (serving/worker_settings.py): forked where
the workers are (serving/prefork.py), so it only imports onnxruntime and loads the model; spawned
elsewhere, with the values pickled. The first workers start while it runs and wait for its verdict
before they load the model (serving/worker.py, bench/README.md).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from typing import TYPE_CHECKING, Any, cast

from serving.prefork import start_method
from serving.settings_child import ended_by_signal

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from serving.settings import Settings


class ModelCheckFailed(Exception):
    """The model cannot be served; the message is the one line to print."""


class ModelCheck:
    """The check's child; `result()` waits for its verdict."""

    def __init__(self, process: BaseProcess, verdict: Connection) -> None:
        self.process = process
        self.verdict = verdict

    @classmethod
    def start(cls, values: dict[str, Any]) -> ModelCheck:
        """Check the model the settings (`handed_over`) name."""
        forked = start_method() == "fork"
        context = multiprocessing.get_context("fork") if forked else multiprocessing.get_context("spawn")
        verdict, send = context.Pipe(duplex=False)
        process = context.Process(target=_check, args=(values, send), name="model check", daemon=True)
        process.start()
        send.close()  # the child's end: once it exits, reading here ends
        return cls(process, verdict)

    def result(self) -> tuple[str, str]:
        """The model's name and version, as a worker will load it."""
        try:
            found = self.verdict.recv()
        except EOFError:  # it ended without a word: killed, or an unexpected error (printed)
            found = None
        self.process.join()
        self.verdict.close()
        if found is None:
            code = self.process.exitcode or 0
            ended = ended_by_signal(-code) if code < 0 else f"exited with {code} (its error is above)"
            raise ModelCheckFailed(f"the model check {ended}")
        loaded, first, second = found
        if not loaded:
            raise ModelCheckFailed(first)
        return first, second


def _check(values: dict[str, Any], verdict: Connection) -> None:
    # Ctrl-C reaches the whole process group: the server answers it, this child finishes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):  # the server is gone (stopped while starting): nobody to tell
        _load(values, verdict)


def _load(values: dict[str, Any], verdict: Connection) -> None:
    from serving.capture import CaptureSettingsError, record_format
    from serving.runtime import ModelLoadError, load_runtime
    from serving.worker_settings import take_over

    settings = cast("Settings", take_over(values))
    try:
        runtime = load_runtime(settings)
        if settings.capture_percent > 0:
            record_format(settings, runtime)
    except (ModelLoadError, CaptureSettingsError) as error:
        verdict.send((False, str(error), ""))
        return
    verdict.send((True, runtime.name, runtime.version))
