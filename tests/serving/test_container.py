"""The image without Docker: the build context alone (as .dockerignore leaves it) runs the server."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from stacks.image import base_image
from tests.conftest import SAMPLE_ROWS
from tests.serving.server import REPO, running_server

CONTEXT = REPO / "serving"


def _ignored(relative: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(relative, p)
        or fnmatch.fnmatch(relative, p.removeprefix("**/"))
        or any(fnmatch.fnmatch(part, p.removeprefix("**/")) for part in relative.split("/"))
        for p in patterns
    )


def copy_build_context(destination: Path) -> None:
    patterns = [
        line.strip()
        for line in (CONTEXT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in CONTEXT.rglob("*"):
        relative = source.relative_to(CONTEXT).as_posix()
        if source.is_file() and not _ignored(relative, patterns):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_dockerfile_runs_the_server_the_sagemaker_way() -> None:
    dockerfile = (CONTEXT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "serving"]' in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "COPY --from=model / /opt/ml/model/" in dockerfile
    assert "--require-hashes --no-deps" in dockerfile, "the image installs its lock and nothing else"
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base_image()), base_image()
    for lock in ("requirements.txt", "requirements-batch.txt", "requirements-drift.txt"):
        pins = locked(CONTEXT / lock)
        assert not [p for p in pins if p.startswith(("pulumi", "scikit-learn", "skl2onnx"))]
        assert all(version and hashes for version, hashes in pins.values()), f"{lock}: every package pinned, hashed"


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile style lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line):
            name = match.group(1).lower()
            pins[name] = (match.group(2), [])
        elif name and (match := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            pins[name][1].append(match.group(1))
    return pins


def test_batch_lock_pins_the_server_packages_at_the_same_versions() -> None:
    server, batch = locked(CONTEXT / "requirements.txt"), locked(CONTEXT / "requirements-batch.txt")
    assert {name: pin[0] for name, pin in server.items()} == {name: batch[name][0] for name in server}
    assert {"pyarrow", "fsspec", "s3fs", "adlfs"} <= set(batch)


def test_drift_lock_pins_the_server_packages_at_the_same_versions() -> None:
    """`python -m serving drift` parses captured bodies with the server's own code, at the image's versions."""
    server, drift = locked(CONTEXT / "requirements.txt"), locked(CONTEXT / "requirements-drift.txt")
    assert {name: pin[0] for name, pin in server.items()} == {name: drift[name][0] for name in server}
    assert {"scipy", "plotly", "boto3", "azure-storage-blob", "azure-identity"} <= set(drift)
    assert not {"scipy", "plotly"} & set(server), "the report's libraries stay out of the image"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("source", "lock", "extra"),
    [
        ("requirements.in", "requirements.txt", []),
        ("requirements-batch.in", "requirements-batch.txt", ["-c", "requirements.txt"]),
        ("requirements-drift.in", "requirements-drift.txt", ["-c", "requirements.txt"]),
    ],
)
def test_the_lock_is_what_its_input_resolves_to(tmp_path: Path, source: str, lock: str, extra: list[str]) -> None:
    """`make lock` again gives the committed file: the lock matches requirements*.in exactly."""
    uv = Path(sys.executable).parent / "uv"
    output = tmp_path / lock
    shutil.copy(CONTEXT / lock, output)  # as `make lock` does: the current pins are preferred
    extra = [str(CONTEXT / e) if e.endswith(".txt") else e for e in extra]
    result = subprocess.run(
        [
            str(uv),
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--python-version",
            "3.11",
            "--no-header",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--index-url",
            "https://pypi.org/simple",
            str(CONTEXT / source),
            *extra,
            "-o",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    if result.returncode != 0 and "Failed to fetch" in result.stderr:
        pytest.skip(f"the package index is not reachable: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    assert locked(output) == locked(CONTEXT / lock), f"run `make lock` and commit serving/{lock}"


@pytest.mark.timeout(600)
def test_build_context_alone_serves_predictions(tmp_path: Path) -> None:
    """Install only serving/requirements.txt in a fresh venv and start the server from the copied files."""
    app = tmp_path / "app"
    copy_build_context(app / "serving")
    assert not list((app / "serving").rglob("__pycache__"))
    model_dir = tmp_path / "opt-ml-model"
    shutil.copytree(app / "serving" / "model", model_dir)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(app / "serving" / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # Installed as the Dockerfile does, without resolving: every dependency must be in the lock.
    complete = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert complete.returncode == 0, complete.stdout
    check = subprocess.run([python, "-c", "import pulumi"], capture_output=True, cwd=app)
    assert check.returncode != 0, "the serving environment must not contain Pulumi"

    with running_server(tmp_path, python=python, cwd=app, env={"SM_MODEL_DIR": str(model_dir)}) as server:
        response = httpx.post(server.url + "/invocations", json={"instances": SAMPLE_ROWS})
        assert response.status_code == 200
        assert len(response.json()["predictions"]) == len(SAMPLE_ROWS)
    assert sys.executable != python


@pytest.mark.timeout(600)
def test_batch_extras_resolve_with_the_server_pins(tmp_path: Path) -> None:
    """`--build-arg EXTRAS=batch` installs serving/requirements-batch.txt: in hash mode pip refuses any
    dependency the lock lacks, so a dry run proves it complete."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    result = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(CONTEXT / "requirements-batch.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
