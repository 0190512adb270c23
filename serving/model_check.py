"""The model check a multi-worker server's parent runs in a child process.

The parent only supervises: loading the model there (to fail fast, before binding the port) kept
onnxruntime, numpy and the model in a process that never serves (108 MB against uvicorn's own
29 MB; bench/README.md). A child loads and warms it up the same way and exits, handing back the
model's name and version, or the one line that says why it cannot be served.

The child takes the validated settings (pickled on its standard input, as the workers take them:
serving/worker_settings.py), so it imports no pydantic. The parent starts it before the settings are
validated (serving/settings_child.py): it imports onnxruntime meanwhile, then waits for them. The
first workers start while it loads the model and wait for its verdict before they load it
(serving/worker.py, bench/README.md).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from serving.settings import Settings


class ModelCheckFailed(Exception):
    """The model cannot be served; the message is the one line to print."""


class ModelCheck:
    """The check's child: started before the settings are known (it imports onnxruntime meanwhile), then
    handed them; `result()` waits for its verdict."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child

    @classmethod
    def start(cls) -> ModelCheck:
        return cls(
            subprocess.Popen(
                [sys.executable, "-m", "serving.model_check"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )

    def hand(self, values: dict[str, Any]) -> None:
        """Check the model the settings (`handed_over`) name."""
        stdin = self.child.stdin
        assert stdin is not None  # noqa: S101 (PIPE above)
        stdin.write(pickle.dumps(values))  # a few kB: the pipe takes it without waiting for the child
        stdin.close()
        self.child.stdin = None  # written and closed: nothing for communicate() to flush

    def abandon(self) -> None:
        """Not wanted after all (the settings are invalid, or name one worker): stop it, quietly."""
        self.child.kill()
        self.child.communicate()

    def result(self) -> tuple[str, str]:
        """The model's name and version, as a worker will load it."""
        stdout, stderr = self.child.communicate()
        if self.child.returncode != 0:
            lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
            raise ModelCheckFailed(lines[-1] if lines else f"the model check exited with {self.child.returncode}")
        found = json.loads(stdout.decode().strip().splitlines()[-1])
        return str(found["name"]), str(found["version"])


def main() -> int:
    from serving.capture import CaptureSettingsError, record_format
    from serving.runtime import ModelLoadError, load_runtime
    from serving.worker_settings import take_over

    handed = sys.stdin.buffer.read()  # imported above while the parent validated the settings
    if not handed:
        return 1  # the parent gave up (invalid settings) or is gone: nothing to check
    settings = cast("Settings", take_over(pickle.loads(handed)))  # noqa: S301 (the parent's)
    try:
        runtime = load_runtime(settings)
        if settings.capture_percent > 0:
            record_format(settings, runtime)
    except (ModelLoadError, CaptureSettingsError) as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps({"name": runtime.name, "version": runtime.version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
