"""API key check: `Authorization: Bearer <key>`, compared in constant time against every key.

Keys rotate without a restart: when they come from a file (a mounted Kubernetes Secret, which the
kubelet updates in place), `KeyFile` notices the change and the check takes the new keys.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from serving.errors import Unauthorized

if TYPE_CHECKING:
    from pydantic import SecretStr  # or serving.worker_settings.Secret: what workers hold

    from serving.tokens import TokenCheck  # PyJWT and cryptography load only where tokens are on

log = logging.getLogger("serving")


class KeyCheck:
    """Accepts any configured key (primary or secondary, so keys can rotate without downtime), and,
    when `tokens` is given, Microsoft Entra ID access tokens."""

    def __init__(self, keys: Sequence[SecretStr], tokens: TokenCheck | None = None) -> None:
        self._expected: tuple[bytes, ...] = ()
        self.tokens = tokens
        self.enabled = False
        self.replace(keys)

    def replace(self, keys: Sequence[SecretStr]) -> None:
        self._expected = tuple(key.get_secret_value().encode() for key in keys)
        self.enabled = bool(self._expected) or self.tokens is not None

    def verify(self, authorization: bytes | None) -> None:
        if not self.enabled:
            return
        # The scheme is case-insensitive (RFC 9110, 11.1): `bearer <key>` is as good as `Bearer <key>`.
        scheme, _, token = (authorization or b"").partition(b" ")
        token = token.strip()
        # Compare against every key so timing does not tell which key (if any) matched.
        matched = False
        for expected in self._expected:
            matched |= hmac.compare_digest(token, expected)
        if matched and scheme.lower() == b"bearer":
            return
        if self.tokens is not None and scheme.lower() == b"bearer" and token.count(b".") == 2:
            self.tokens.verify(token)
            return
        reason = "missing Authorization header" if authorization is None else "invalid API key"
        what = "<key or Entra ID token>" if self.tokens is not None else "<key>"
        raise Unauthorized(f"{reason}; send 'Authorization: Bearer {what}'")


class KeyFile:
    """Watches SERVING_SECRETS_DIR/SERVING_API_KEYS and hands changed, valid keys to `apply`."""

    NAME = "SERVING_API_KEYS"

    def __init__(
        self, directory: str, load: Callable[[], Sequence[SecretStr]], apply: Callable[[Sequence[SecretStr]], None]
    ) -> None:
        self.path = Path(directory) / self.NAME
        self.load = load
        self.apply = apply
        self.seen = self._signature()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)  # follows the kubelet's ..data symlink swap
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def check(self) -> bool:
        """Called twice a second; True when new keys were taken."""
        signature = self._signature()
        if signature == self.seen:
            return False
        self.seen = signature
        from pydantic import ValidationError  # loaded with the settings' validation, only when keys rotate

        try:
            keys = self.load()
        except ValidationError as error:
            log.error("API keys in %s not taken, the old ones stay: %s", self.path, error.errors()[0]["msg"])
            return False
        if not keys:
            log.error("API keys in %s are empty; the old ones stay (turning auth off needs a restart)", self.path)
            return False
        self.apply(keys)
        log.info("API keys reloaded from %s (%d keys)", self.path, len(keys))
        return True
