"""The server's settings, validated in a forked child while the server imports the rest.

pydantic and pydantic-settings take as long to import, and to build the Settings model, as uvicorn,
onnxruntime and the app together (about 0.4 s each on a small machine; bench/README.md "Start-up").
`serve` forks before importing either: the child validates the settings (serving/settings.py) and
hands back the plain values (`handed_over`, as the workers take them) or the error lines through a
pipe, and exits. The server goes on meanwhile and never imports pydantic itself, so the two halves
run on two cores and the server process holds 12 MB less.

Where there is no fork (Windows), the settings are validated in the process instead: same results.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from typing import Any


class InvalidSettings(Exception):
    """The settings cannot be served with; the message is the lines to print, one per problem."""


def _validate() -> tuple[bool, Any]:
    """(True, the values) or (False, the error lines)."""
    from pydantic import ValidationError

    from serving.settings import describe_settings_error, handed_over, load_settings

    try:
        return True, handed_over(load_settings())
    except ValidationError as error:
        return False, describe_settings_error(error)


class PendingSettings:
    """Settings being validated; `result()` waits for them."""

    def __init__(self) -> None:
        self._pid = 0
        self._pipe = -1
        self._done: tuple[bool, Any] | None = None

    @classmethod
    def start(cls) -> PendingSettings:
        """Start validating the settings the environment holds now (flags already copied into it)."""
        pending = cls()
        if not hasattr(os, "fork"):
            pending._done = _validate()
            return pending
        sys.stdout.flush()
        sys.stderr.flush()  # nothing buffered before the fork is written twice
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: validate, hand back, leave without running the parent's exit handlers
            code = 1
            try:
                # Ctrl-C reaches the whole process group: the server answers it, this child finishes.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                os.close(read)
                with os.fdopen(write, "wb") as pipe:
                    pipe.write(pickle.dumps(_validate()))
                code = 0
            except BrokenPipeError:
                pass  # the server is gone (stopped while starting): nobody to tell
            except BaseException:  # printed; the parent says the settings were not validated
                import traceback

                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(write)
        pending._pid, pending._pipe = pid, read
        return pending

    def result(self) -> dict[str, Any]:
        """The validated values (serving.worker_settings.take_over takes them); InvalidSettings if invalid."""
        if self._done is None:
            chunks = []
            with os.fdopen(self._pipe, "rb") as pipe:
                while chunk := pipe.read():
                    chunks.append(chunk)
            _, status = os.waitpid(self._pid, 0)
            if not chunks:
                raise InvalidSettings(f"the settings could not be validated: the validating process {_ended(status)}")
            self._done = pickle.loads(b"".join(chunks))  # noqa: S301 (this process's own child)
        valid, found = self._done
        if not valid:
            raise InvalidSettings(found)
        return dict(found)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return ended_by_signal(os.WTERMSIG(status))
    return f"exited with {os.waitstatus_to_exitcode(status)} (its error is above)"


def ended_by_signal(number: int) -> str:
    """How a child killed by a signal ended, in words; SIGKILL is most often the kernel's, for memory."""
    name = signal.Signals(number).name
    if number == signal.SIGKILL:
        return f"was killed ({name}: out of memory? give the container more)"
    return f"was stopped by {name}"
