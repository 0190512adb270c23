"""scripts/release_model.py: what model-release.yml runs to record a release and to find the newest one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from offline.mocks import evaluate
from tests.mlflow_registry import ALLOW_FILE_STORE, register
from tests.serving.models import linear_regressor
from tests.serving.server import REPO


def release(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release_model.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def stacks(tmp_path: Path) -> list[Path]:
    copies = []
    for name in ("Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
        copies.append(tmp_path / name)
    return copies


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return linear_regressor(tmp_path / "models" / "v2" / "model.onnx", [1.0, 2.0, 3.0], 0.5)


def test_record_pins_source_version_and_digest_and_keeps_the_rest(
    stacks: list[Path], model: Path, tmp_path: Path
) -> None:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    before = [s.read_text() for s in stacks]
    cache = {"MLSERVE_MODEL_CACHE": str(tmp_path / "c")}
    result = release("record", "--source", model, "--version", "2", *stacks, env=cache)
    assert result.returncode == 0, result.stderr
    for stack, old in zip(stacks, before, strict=True):
        settings = yaml.safe_load(stack.read_text())["config"]["mlserve:model"]
        assert settings == {"name": "weather-rain", "version": "2", "source": str(model), "sha256": digest}
        assert isinstance(settings["version"], str), "a string, whatever it looks like"
        unchanged = [line for line in old.splitlines() if "version:" not in line]
        assert all(line in stack.read_text().splitlines() for line in unchanged), "comments and settings kept"
    # The stack, as Pulumi would run it, now bakes in that model.
    recorded = yaml.safe_load(stacks[0].read_text())["config"]["mlserve:model"]
    os.environ.update(cache)
    try:
        evaluation = evaluate("dev", {"mlserve:model": recorded})
    finally:
        del os.environ["MLSERVE_MODEL_CACHE"]
    assert evaluation.serving_image().inputs["labels"]["mlserve.model-sha256"] == digest
    assert evaluation.outputs["model_sample"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "2; rm -rf /"], "invalid model version"),
        (["--version", "2", "--sha256", "abc"], "invalid sha256"),
        (["--version", "2", "--sha256", "0" * 64], "not the pinned 0000"),
    ],
)
def test_record_refuses_bad_input_and_changes_nothing(
    stacks: list[Path], model: Path, args: list[str], message: str
) -> None:
    before = [s.read_text() for s in stacks]
    result = release("record", "--source", model, *args, *stacks)
    assert result.returncode == 2
    assert message in result.stderr
    assert [s.read_text() for s in stacks] == before


def test_newest_from_a_latest_pointer_next_to_the_artifacts(
    stacks: list[Path], https_files: tuple[str, Path], model: Path
) -> None:
    base, root = https_files
    (root / "v1").mkdir()
    shutil.copy(model, root / "v1" / "model.onnx")
    dev = stacks[0]
    text = dev.read_text().replace('    version: "1"\n', f'    version: "1"\n    source: "{base}/v1/model.onnx"\n')
    dev.write_text(text)
    assert release("newest", dev).stdout.splitlines()[0] == "release=false", "no pointer: nothing to release"
    (root / "latest.json").write_text(json.dumps({"version": "1", "source": f"{base}/v1/model.onnx"}))
    assert release("newest", dev).stdout.splitlines()[0] == "release=false", "the deployed version is the newest"
    latest = {"version": "2", "source": f"{base}/v2/model.onnx", "sha256": "a" * 64}
    (root / "latest.json").write_text(json.dumps(latest))
    lines = release("newest", dev).stdout.splitlines()
    assert lines == ["release=true", f"source={base}/v2/model.onnx", "version=2", f"sha256={'a' * 64}"]


def test_newest_from_the_mlflow_registry(stacks: list[Path], model: Path, tmp_path: Path) -> None:
    tracking = register(tmp_path, model, "tariff", versions=2)
    env = {"MLFLOW_TRACKING_URI": tracking, **ALLOW_FILE_STORE}
    dev = stacks[0]
    dev.write_text(dev.read_text().replace('    version: "1"\n', '    version: "1"\n    source: "models:/tariff/1"\n'))
    lines = release("newest", dev, env=env).stdout.splitlines()
    assert lines[:3] == ["release=true", "source=models:/tariff/2", "version=2"]
