"""Entra ID tokens: locally generated keys, a local JWKS endpoint, the real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import PRIMARY_KEY, SAMPLE_ROWS
from tests.serving.server import RunningServer, json_endpoint, running_server

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUDIENCE = "api://mlserve-test"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
SIGNING = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


class Jwks:
    def __init__(self) -> None:
        self.keys = [jwk(SIGNING, "k1")]
        self.fetches = 0


@pytest.fixture(scope="module")
def jwks() -> Iterator[tuple[Jwks, str]]:
    state = Jwks()

    def keys(_: bytes) -> dict:
        state.fetches += 1
        return {"keys": state.keys}

    with json_endpoint(keys) as url:
        yield state, url + "keys"


@pytest.fixture(scope="module")
def entra(jwks: tuple[Jwks, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "SERVING_API_KEYS": f"{PRIMARY_KEY},other-key-0123456789abcdef",
        "SERVING_ENTRA_TENANT_ID": TENANT,
        "SERVING_ENTRA_AUDIENCE": AUDIENCE,
        "SERVING_ENTRA_REQUIRED_ROLE": "Score",
        "SERVING_ENTRA_JWKS_URL": jwks[1],
        # One worker: the refetch bound is per process, and two would each fetch once for the first token.
        "SERVING_WORKERS": "1",
    }
    with running_server(tmp_path_factory.mktemp("entra"), env=env) as server:
        yield server


def token(key: rsa.RSAPrivateKey = SIGNING, kid: str = "k1", **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600, "roles": ["Score"], **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid})


def score(server: RunningServer, authorization: str) -> httpx.Response:
    return httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"Authorization": authorization})


def test_a_valid_token_is_accepted_and_keys_still_work(entra: RunningServer) -> None:
    assert score(entra, f"Bearer {token()}").status_code == 200
    assert score(entra, f"Bearer {PRIMARY_KEY}").status_code == 200
    v1 = token(iss=f"https://sts.windows.net/{TENANT}/")
    assert score(entra, f"Bearer {v1}").status_code == 200, "v1.0 tokens of the tenant too"


NONE_TOKEN = (
    jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    + "."
    + jwt.utils.base64url_encode(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "exp": 9999999999}).encode()).decode()
    + "."
)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200),
            "expired",
        ),
        (lambda: token(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: token(aud="api://someone-else"), "another audience"),
        (
            lambda: token(iss="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"),
            "another issuer",
        ),
        (lambda: token(key=OTHER), "signature is invalid"),
        (lambda: token(key=OTHER, kid="k9"), "unknown key"),
        (lambda: NONE_TOKEN, "algorithm must be RS256"),
        (lambda: token(roles=["Read"]), "lacks the app role 'Score'"),
        (lambda: token(exp=None), "malformed or incomplete"),
        (lambda: token(roles="unscored"), "'roles' must be a list"),
        (lambda: token(exp=str(int(time.time()) + 600)), "'exp' must be a number"),
    ],
)
def test_bad_tokens_get_401_with_the_reason(entra: RunningServer, make, reason: str) -> None:
    bad = make()
    response = score(entra, f"Bearer {bad}")
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert bad not in entra.log(), "nothing that could be replayed is logged"


def test_unknown_key_ids_refetch_the_keys_at_most_once_a_minute(entra: RunningServer, jwks: tuple[Jwks, str]) -> None:
    state, _ = jwks
    before = state.fetches
    for i in range(20):
        assert score(entra, f"Bearer {token(kid=f'forged-{i}')}").status_code == 401
    assert state.fetches - before <= 1


def test_a_validated_token_is_remembered_until_it_expires(
    jwks: tuple[Jwks, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path pays a lookup, not an RSA verification, for a token it has seen (until its exp)."""
    from serving import tokens
    from serving.tokens import TokenCheck, TokenPolicy

    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(tokens.jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    check = TokenCheck(TokenPolicy(TENANT, AUDIENCE, None, jwks[1]))
    good = token().encode()
    for _ in range(1000):
        check.verify(good)
    assert len(decodes) == 1
    soon = token(exp=int(time.time()) + 1).encode()
    check.verify(soon)
    time.sleep(1.2)
    check.verify(soon)  # past its exp: verified again (and still within the 60 s clock-skew leeway)
    assert len(decodes) == 3
