"""Structured JSON logs: one line per event, and one access line per request, never keys or payloads."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import re
import sys
import uuid

import orjson

_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")


class RequestIds:
    """Unique request ids without a random draw per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

    def next(self, header: bytes | None) -> str:
        """The caller's X-Request-ID when it is sane (visible ASCII, at most 128 bytes), else a new one."""
        if header is not None and _REQUEST_ID.match(header):
            return header.decode("ascii")
        return f"{self._prefix}-{next(self._counter):x}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """Access lines written straight to stdout through a buffer, flushed by the event loop's timer.

    Going through `logging` costs several microseconds a line; at thousands of requests a second that
    is most of a request's budget.
    """

    def __init__(self, enabled: bool, stream: io.RawIOBase | None = None) -> None:
        self.enabled = enabled
        raw = stream if stream is not None else io.FileIO(os.dup(sys.stdout.fileno()), "wb")
        self._out = io.BufferedWriter(raw, buffer_size=64 * 1024)
        self._pid = os.getpid()

    def write(
        self, request_id: str, method: str, route: str, path: str, status: int, seconds: float, rows: int, at: float
    ) -> None:
        """One line; `at` is when the response was sent (seconds since the epoch)."""
        if not self.enabled:
            return
        self._out.write(
            orjson.dumps(
                {
                    "time": at,
                    "level": "info",
                    "logger": "access",
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "latency_us": int(seconds * 1e6),
                    "rows": rows,
                    "pid": self._pid,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        )

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._out.flush()
