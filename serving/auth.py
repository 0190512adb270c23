"""API key check: `Authorization: Bearer <key>`, compared in constant time against every key."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from pydantic import SecretStr

from serving.errors import Unauthorized


class KeyCheck:
    """Accepts any configured key (primary or secondary, so keys can rotate without downtime)."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._expected = tuple(b"Bearer " + key.get_secret_value().encode() for key in keys)
        self.enabled = bool(self._expected)

    def verify(self, authorization: bytes | None) -> None:
        if not self._expected:
            return
        presented = authorization or b""
        # Compare against every key so timing does not tell which key (if any) matched.
        matched = False
        for expected in self._expected:
            matched |= hmac.compare_digest(presented, expected)
        if not matched:
            reason = "missing Authorization header" if authorization is None else "invalid API key"
            raise Unauthorized(f"{reason}; send 'Authorization: Bearer <key>'")
