"""The model check a multi-worker server's parent runs in a child process.

The parent only supervises: loading the model there (to fail fast, before binding the port) kept
onnxruntime, numpy and the model in a process that never serves (108 MB against uvicorn's own
29 MB; bench/README.md). A child loads and warms it up the same way and exits, handing back the
model's name and version, or the one line that says why it cannot be served.
"""

from __future__ import annotations

import json
import subprocess
import sys


class ModelCheckFailed(Exception):
    """The model cannot be served; the message is the one line to print."""


def check_in_child() -> tuple[str, str]:
    """The model's name and version, as a worker will load it (settings from this environment)."""
    result = subprocess.run([sys.executable, "-m", "serving.model_check"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise ModelCheckFailed(lines[-1] if lines else f"the model check exited with {result.returncode}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return str(found["name"]), str(found["version"])


def main() -> int:
    from serving.capture import CaptureSettingsError, record_format
    from serving.runtime import ModelLoadError, load_runtime
    from serving.settings import load_settings

    settings = load_settings()
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
