"""Microsoft Entra ID access tokens, beside (or instead of) API keys, as Azure ML endpoints offer.

A token is accepted when its RS256 signature verifies against the tenant's published keys (JWKS,
fetched and cached; fetched again for an unknown key id, at most once a minute, so forged key ids
cannot make the server hammer Entra), and its issuer, audience, expiry and not-before hold, and, if
one is required, it carries the app role. A validated token is remembered until it expires, so the
hot path pays a dictionary lookup rather than an RSA verification per request (bench/README.md).
Nothing of a token is ever logged.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import jwt

from serving.errors import Unauthorized

ENTRA = "https://login.microsoftonline.com"
REFRESH_AT_MOST_EVERY_SECONDS = 60
# What a failed check tells the client, by PyJWT's error (the first that matches).
REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidAudienceError, "token is for another audience"),
    (jwt.InvalidIssuerError, "token is from another issuer (tenant)"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
)
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class TokenPolicy:
    tenant_id: str
    audience: str
    required_role: str | None = None
    jwks_url: str | None = None  # default: the tenant's

    @property
    def issuers(self) -> list[str]:
        # v2.0 tokens, and v1.0 tokens (an app registration's default accessTokenAcceptedVersion).
        return [f"{ENTRA}/{self.tenant_id}/v2.0", f"https://sts.windows.net/{self.tenant_id}/"]

    @property
    def keys_url(self) -> str:
        return self.jwks_url or f"{ENTRA}/{self.tenant_id}/discovery/v2.0/keys"


class TokenCheck:
    def __init__(self, policy: TokenPolicy) -> None:
        self.policy = policy
        self.keys = jwt.PyJWKClient(policy.keys_url, cache_keys=False, cache_jwk_set=False, timeout=5)
        self._signing: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._valid_until: dict[bytes, float] = {}  # sha256(token) -> exp

    def _key(self, kid: str) -> jwt.PyJWK:
        key = self._signing.get(kid)
        if key is not None:
            return key
        if time.monotonic() - self._fetched_at < REFRESH_AT_MOST_EVERY_SECONDS:
            raise Unauthorized("token signed with an unknown key")
        self._fetched_at = time.monotonic()
        try:
            self._signing = {k.key_id: k for k in self.keys.get_signing_keys() if k.key_id}
        except jwt.PyJWKClientError:
            raise Unauthorized("token keys are unavailable right now; retry shortly") from None
        key = self._signing.get(kid)
        if key is None:
            raise Unauthorized("token signed with an unknown key")
        return key

    def verify(self, token: bytes) -> None:
        """Raises Unauthorized with the reason; returns when the token is good."""
        digest = hashlib.sha256(token).digest()
        until = self._valid_until.get(digest)
        now = time.time()
        if until is not None and now < until:
            return
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256":
                raise Unauthorized("token algorithm must be RS256")
            key = self._key(str(header.get("kid", "")))
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.policy.audience,
                issuer=self.policy.issuers,
                options={"require": ["exp", "nbf", "iss", "aud"]},
                leeway=60,
            )
        except jwt.PyJWTError as error:
            reason = next(
                (text for kind, text in REASONS if isinstance(error, kind)), "token is malformed or incomplete"
            )
            raise Unauthorized(reason) from None
        # PyJWT reads a numeric string as a time (int("...")); Entra writes numbers, so anything else
        # is not one of its tokens.
        for claim in ("exp", "nbf"):
            if type(claims[claim]) not in (int, float):
                raise Unauthorized(f"token claim {claim!r} must be a number (seconds since the epoch)")
        role = self.policy.required_role
        if role is not None:
            roles = claims.get("roles", [])
            # A string would pass a membership test by substring ("unscored" contains "score").
            if not isinstance(roles, list):
                raise Unauthorized("token claim 'roles' must be a list of app roles")
            if role not in roles:
                raise Unauthorized(f"token lacks the app role {role!r}")
        if len(self._valid_until) >= MAX_REMEMBERED:
            self._valid_until = {d: t for d, t in self._valid_until.items() if t > now}
            if len(self._valid_until) >= MAX_REMEMBERED:
                self._valid_until.clear()
        self._valid_until[digest] = float(claims["exp"])
