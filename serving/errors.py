"""Errors a request can cause. Each maps to one HTTP status and a JSON body, in one place."""

from __future__ import annotations


class RequestError(Exception):
    """A request the server cannot read as HTTP: no `Host` in an HTTP/1.1 request, two `Host` or `Authorization`
    headers, a request line without a version. The base of every error: `status` is the HTTP status to answer."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []


class InvalidInput(RequestError):
    """The body cannot be scored: invalid JSON or CSV, wrong width, a value that is not a number (true/false included),
    NaN/Inf or out of float32 range, no rows or too many, unknown method or output, records with missing or unknown
    feature names, named columns for a model without feature names, v2 values outside their datatype."""

    status = 400
    code = "invalid_input"


class Unauthorized(RequestError):
    """No key or token, or a wrong one (answered with `WWW-Authenticate: Bearer`); a token's failed check says why."""

    status = 401
    code = "unauthorized"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="mlserve"')]


class NotFound(RequestError):
    """Unknown route, model name or version."""

    status = 404
    code = "not_found"


class MethodNotAllowed(RequestError):
    """The route does not take this method."""

    status = 405
    code = "method_not_allowed"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", b"POST")]


class NotAcceptable(RequestError):
    """An `Accept` the route cannot answer (`/invocations`: JSON or CSV; `/score` and v2 `infer`: JSON)."""

    status = 406
    code = "not_acceptable"


class PayloadTooLarge(RequestError):
    """A body over `SERVING_MAX_BODY_BYTES`: refused from `Content-Length` before it is read, or counted as it
    arrives."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    """A `Content-Type` the route does not read (`/invocations`: JSON or CSV; `/score` and v2 `infer`: JSON)."""

    status = 415
    code = "unsupported_media_type"


class ExpectationFailed(RequestError):
    """An `Expect` other than `100-continue`."""

    status = 417
    code = "expectation_failed"


class HeadersTooLarge(RequestError):
    """Request line and headers over `SERVING_MAX_HEADER_BYTES`, or more header lines than
    `SERVING_MAX_HEADER_COUNT`."""

    status = 431
    code = "headers_too_large"


class HttpVersionNotSupported(RequestError):
    """A request line with an HTTP version other than 1.0 or 1.1."""

    status = 505
    code = "http_version_not_supported"


class NotReady(RequestError):
    """The model is not loaded yet, or the server is shutting down (with `Retry-After: 1`)."""

    status = 503
    code = "not_ready"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class Overloaded(RequestError):
    """Too many requests: the queue is full, no thread within `SERVING_MAX_QUEUE_WAIT_MS`, or too many bodies held
    at once; 503 at once (with `Retry-After: 1`) rather than a growing queue."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class ScoringTimeout(RequestError):
    """Scoring took longer than `SERVING_SCORING_TIMEOUT_MS`; the model run is stopped and the server carries on."""

    status = 504
    code = "scoring_timeout"
