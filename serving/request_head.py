"""The rules of HTTP/1.1 for a request's head that the parser leaves to the server (RFC 9112, 9110).

Checked by the front only when a head is unusual (a repeated name, no Host, an Expect, another
version, many lines): the usual request pays one dict and four comparisons.
"""

from __future__ import annotations

from serving.errors import ExpectationFailed, HeadersTooLarge, HttpVersionNotSupported, RequestError

# Names a request may carry once: two Hosts or two credentials leave it open which one counts.
SINGLE = (b"host", b"authorization", b"content-length")


def is_unusual(raw: list[tuple[bytes, bytes]], headers: dict[bytes, bytes], version: str, max_count: int) -> bool:
    return (
        len(headers) != len(raw)
        or version != "1.1"
        or b"host" not in headers
        or b"expect" in headers
        or len(raw) > max_count
    )


def check(raw: list[tuple[bytes, bytes]], headers: dict[bytes, bytes], version: str, max_count: int) -> None:
    """Raise the RequestError HTTP/1.1 prescribes for this head, if any."""
    if version not in ("1.0", "1.1"):
        if version.startswith("0."):
            raise RequestError("the request line has no HTTP version; send HTTP/1.1")
        raise HttpVersionNotSupported(f"HTTP/{version} is not supported here; send HTTP/1.1")
    if len(raw) > max_count:
        raise HeadersTooLarge(f"{len(raw)} header lines exceed the limit of {max_count}")
    if len(headers) != len(raw):
        names = [name for name, _ in raw]
        for name in SINGLE:
            if names.count(name) > 1:
                raise RequestError(f"more than one {name.decode().title()} header; send it once")
    if version == "1.1" and b"host" not in headers:
        raise RequestError("an HTTP/1.1 request must have a Host header (RFC 9112, section 3.2)")
    expect = headers.get(b"expect")
    if expect is not None and expect.lower() != b"100-continue":
        raise ExpectationFailed(f"Expect: {expect.decode('latin-1')!r:.60} is not supported; only 100-continue is")
