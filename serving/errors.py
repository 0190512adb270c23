"""Errors a request can cause. Each maps to one HTTP status and a JSON body, in one place."""

from __future__ import annotations


class RequestError(Exception):
    """The client's request cannot be served; `status` is the HTTP status to answer with."""

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
    status = 400
    code = "invalid_input"


class Unauthorized(RequestError):
    status = 401
    code = "unauthorized"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="mlserve"')]


class NotFound(RequestError):
    status = 404
    code = "not_found"


class MethodNotAllowed(RequestError):
    status = 405
    code = "method_not_allowed"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", b"POST")]


class NotAcceptable(RequestError):
    status = 406
    code = "not_acceptable"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    status = 415
    code = "unsupported_media_type"


class ExpectationFailed(RequestError):
    status = 417
    code = "expectation_failed"


class HeadersTooLarge(RequestError):
    status = 431
    code = "headers_too_large"


class HttpVersionNotSupported(RequestError):
    status = 505
    code = "http_version_not_supported"


class NotReady(RequestError):
    status = 503
    code = "not_ready"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class Overloaded(RequestError):
    """Too many requests: 503 at once rather than a growing queue."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class ScoringTimeout(RequestError):
    status = 504
    code = "scoring_timeout"
