"""The image without Docker: the build context alone (as .dockerignore leaves it) runs the server."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

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
    packages = [
        line.split("==")[0]
        for line in (CONTEXT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert not [p for p in packages if p.startswith(("pulumi", "scikit-learn", "skl2onnx"))]
    assert all(
        "==" in line
        for line in (CONTEXT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ), "serving requirements must be pinned"


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
            "-r",
            str(app / "serving" / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run([python, "-c", "import pulumi"], capture_output=True, cwd=app)
    assert check.returncode != 0, "the serving environment must not contain Pulumi"

    with running_server(tmp_path, python=python, cwd=app, env={"SM_MODEL_DIR": str(model_dir)}) as server:
        response = httpx.post(server.url + "/invocations", json={"instances": SAMPLE_ROWS})
        assert response.status_code == 200
        assert len(response.json()["predictions"]) == len(SAMPLE_ROWS)
    assert sys.executable != python


@pytest.mark.timeout(600)
def test_batch_extras_resolve_with_the_server_pins(tmp_path: Path) -> None:
    """`docker build --build-arg EXTRAS=batch` installs serving/requirements-batch.txt on top: it must resolve."""
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
            "-r",
            str(CONTEXT / "requirements-batch.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
