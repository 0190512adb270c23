"""What an Entra ID token costs a request: a full RS256 verification against a remembered token.

    .venv/bin/python bench/tokens.py
Prints microseconds per check, both ways, with a locally generated 2048-bit key (as Entra's).
"""

from __future__ import annotations

import json
import time
from unittest import mock

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from serving.tokens import TokenCheck, TokenPolicy

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def main(rounds: int = 2000) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "alg": "RS256"}
    now = int(time.time())
    claims = {
        "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "aud": "api://bench",
        "nbf": now,
        "exp": now + 600,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}).encode()
    check = TokenCheck(TokenPolicy(TENANT, "api://bench"))
    with mock.patch.object(check.keys, "get_signing_keys", return_value=[jwt.PyJWK(public)]):
        check.verify(token)
        started = time.perf_counter()
        for _ in range(rounds):
            check.verify(token)
        remembered = (time.perf_counter() - started) / rounds
        started = time.perf_counter()
        for _ in range(rounds // 10):
            check._valid_until.clear()
            check.verify(token)
        full = (time.perf_counter() - started) / (rounds // 10)
    print(f"remembered token: {remembered * 1e6:.1f} us per request; full RS256 verification: {full * 1e6:.1f} us")


if __name__ == "__main__":
    main()
