"""Key auth: inference needs a key (primary or secondary), health and docs stay open."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PRIMARY_KEY, SAMPLE_ROWS, SECONDARY_KEY, send
from tests.serving.server import RunningServer, running_server

PROTECTED = [
    ("POST", "/score", {"data": SAMPLE_ROWS}),
    ("POST", "/invocations", {"instances": SAMPLE_ROWS}),
    ("POST", "/v2/models/weather-rain/infer", {"inputs": []}),
    ("GET", "/v2/models/weather-rain", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-0123456789abcdef", "Basic abc", ""])
def test_inference_routes_need_a_valid_key(
    client: httpx.Client, method: str, path: str, body: dict | None, authorization: str | None
) -> None:
    response = send(client, method, path, authorization, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["error"]


def test_secondary_key_works_for_rotation(client: httpx.Client) -> None:
    response = send(client, "POST", "/score", f"Bearer {SECONDARY_KEY}", json={"data": SAMPLE_ROWS})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/ping", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/weather-rain/ready", "/docs"]
)
def test_health_and_docs_stay_open(client: httpx.Client, path: str) -> None:
    assert send(client, "GET", path, None).status_code == 200


def test_keys_never_reach_the_log(server: RunningServer) -> None:
    httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"Authorization": "Bearer leaked-guess-123"})
    log = server.log()
    assert "primary-key" not in log
    assert "secondary-key" not in log
    assert "leaked-guess" not in log


def test_keys_from_a_mounted_secret_file(tmp_path: Path) -> None:
    """Kubernetes mounts the key Secret as files; SERVING_SECRETS_DIR points the server at them."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SERVING_API_KEYS").write_text("file-key-0123456789abcdef,file-key-two-0123456789\n")
    with running_server(tmp_path, env={"SERVING_SECRETS_DIR": str(secrets)}) as server:
        body = {"data": SAMPLE_ROWS}
        assert httpx.post(server.url + "/score", json=body).status_code == 401
        ok = httpx.post(server.url + "/score", json=body, headers={"Authorization": "Bearer file-key-two-0123456789"})
        assert ok.status_code == 200


def test_the_scheme_is_case_insensitive(server: RunningServer) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = httpx.post(
            server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"Authorization": f"{scheme} {PRIMARY_KEY}"}
        )
        assert response.status_code == 200, scheme
    wrong_scheme = httpx.post(
        server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"Authorization": f"Basic {PRIMARY_KEY}"}
    )
    assert wrong_scheme.status_code == 401


def test_keys_in_a_mounted_secret_rotate_without_a_restart(tmp_path: Path) -> None:
    """The kubelet swaps a Secret's files through a `..data` symlink; the server takes new keys within a second."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()

    def publish(keys: str, version: int) -> None:
        data = secrets / f"..{version}"
        data.mkdir()
        (data / "SERVING_API_KEYS").write_text(keys)
        link = secrets / "..data.tmp"
        link.symlink_to(data.name)
        link.replace(secrets / "..data")
        if not (secrets / "SERVING_API_KEYS").exists():
            (secrets / "SERVING_API_KEYS").symlink_to("..data/SERVING_API_KEYS")

    old, new = "old-primary-0123456789abcdef", "new-secondary-0123456789abcd"
    publish(old, 1)
    with running_server(tmp_path, env={"SERVING_SECRETS_DIR": str(secrets)}) as server:

        def status(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers=headers).status_code

        assert (status(old), status(new)) == (200, 401)
        publish(f"{old},{new}", 2)  # step 1: add the new key as secondary; clients move to it
        deadline = time.monotonic() + 5
        while status(new) != 200:
            assert time.monotonic() < deadline, "the new key was not taken"
            time.sleep(0.1)
        assert status(old) == 200
        publish(new, 3)  # step 2: drop the old key
        deadline = time.monotonic() + 5
        while status(old) != 401:
            assert time.monotonic() < deadline, "the old key still works"
            time.sleep(0.1)
        assert status(new) == 200
        publish("short", 4)  # a bad file is refused and the keys in force stay
        time.sleep(1.5)
        assert status(new) == 200
        assert "not taken, the old ones stay" in server.log()
