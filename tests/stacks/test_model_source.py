"""mlserve:model.source: fetched, pinned by sha256, cached, baked into the image; bad sources stop the program."""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from offline.mocks import evaluate, merged
from stacks.config import ConfigError
from stacks.model_source import ModelSourceError, fetch_model
from tests.mlflow_registry import register
from tests.serving.models import linear_regressor

DEMO = Path(__file__).resolve().parents[2] / "serving" / "model" / "model.onnx"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return linear_regressor(tmp_path / "user" / "tariff.onnx", [1.0, 2.0, 3.0], 0.5, {"name": "tariff"})


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_a_local_file_lands_in_the_content_addressed_cache(model: Path, cache: Path) -> None:
    artifact = fetch_model(str(model), sha(model), cache)
    assert artifact.sha256 == sha(model)
    assert Path(artifact.directory) == cache / sha(model)
    assert [p.name for p in Path(artifact.directory).iterdir()] == ["model.onnx"]
    # Pinned and cached: the source is not needed again (a preview without network).
    model.unlink()
    assert fetch_model(str(model), artifact.sha256, cache) == artifact


def test_a_directory_and_a_sagemaker_tarball(model: Path, cache: Path, tmp_path: Path) -> None:
    assert fetch_model(str(model.parent), None, cache).sha256 == sha(model)
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model, arcname="model.onnx")
    assert fetch_model(str(archive), sha(model), tmp_path / "cache2").sha256 == sha(model)


@pytest.mark.parametrize("layout", ["mlflow-sklearn", "pickle-file", "directory-of-pickles"])
def test_a_pickle_is_refused_with_the_importer_command(layout: str, cache: Path, tmp_path: Path) -> None:
    """Unpickling runs the file's code: the program never does it, during preview or up."""
    directory = tmp_path / layout
    directory.mkdir()
    (directory / "model.pkl").write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "ran").encode() + b"'\ntR.")
    if layout == "mlflow-sklearn":
        (directory / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    source = directory / "model.pkl" if layout == "pickle-file" else directory
    with pytest.raises(ModelSourceError, match=r"pickle.*never unpickles.*python -m importer"):
        fetch_model(str(source), None, cache)
    assert not (tmp_path / "ran").exists()


def test_an_mlflow_onnx_model_directory(model: Path, cache: Path, tmp_path: Path) -> None:
    directory = tmp_path / "mlflow"
    directory.mkdir()
    shutil.copy(model, directory / "weights.onnx")
    (directory / "MLmodel").write_text("flavors:\n  onnx:\n    data: weights.onnx\n")
    assert fetch_model(str(directory), None, cache).sha256 == sha(model)


def test_a_changed_source_with_the_old_digest_is_fetched_and_refused_naming_both(
    model: Path, cache: Path, tmp_path: Path
) -> None:
    """Pinned and cached under another source: the cache does not answer for the new source."""
    fetch_model(str(model), sha(model), cache)
    other = linear_regressor(tmp_path / "other" / "model.onnx", [3.0, 2.0, 1.0], 0.0)
    with pytest.raises(ModelSourceError) as refused:
        fetch_model(str(other), sha(model), cache)
    message = str(refused.value)
    assert f"the model's sha256 is {sha(other)}, not the pinned {sha(model)}" in message
    assert f"{other} is not what was reviewed; the pinned model was fetched from {model}" in message
    # The same bytes under a second source are fine, and remembered: no fetch next time.
    digest = sha(model)
    mirror = shutil.copy(model, tmp_path / "mirror.onnx")
    assert fetch_model(str(mirror), digest, cache).sha256 == digest
    Path(mirror).unlink()
    model.unlink()
    assert fetch_model(str(mirror), digest, cache).sha256 == digest
    assert fetch_model(str(model), digest, cache).sha256 == digest


def test_a_cached_file_whose_bytes_changed_is_not_used(model: Path, cache: Path) -> None:
    digest = sha(model)
    cached = Path(fetch_model(str(model), digest, cache).directory) / "model.onnx"
    cached.write_bytes(b"tampered")
    assert fetch_model(str(model), digest, cache).sha256 == digest, "fetched again from the source"
    assert sha(cached) == digest
    cached.write_bytes(b"tampered")
    model.unlink()
    with pytest.raises(ModelSourceError, match="no such file or directory"):
        fetch_model(str(model), digest, cache)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://models.example/m.onnx", "plain http is not accepted; use https://"),
        ("ftp://models.example/m.onnx", "unknown scheme ftp://"),
        ("no/such/model.onnx", "no such file or directory"),
    ],
)
def test_sources_that_cannot_be_used(source: str, message: str, cache: Path) -> None:
    with pytest.raises(ModelSourceError, match=message):
        fetch_model(source, None, cache)


def test_a_digest_mismatch_and_a_file_that_is_not_onnx(model: Path, cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=f"the model's sha256 is {sha(model)}, not the pinned 0{{63}}"):
        fetch_model(str(model), "0" * 64, cache)
    (tmp_path / "fake.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelSourceError, match=re.escape("fake.onnx is not a valid ONNX model")):
        fetch_model(str(tmp_path / "fake.onnx"), None, cache)
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy(model, two / "a.onnx")
    shutil.copy(model, two / "b.onnx")
    with pytest.raises(
        ModelSourceError, match=re.escape("expected exactly one .onnx file in the source, found a.onnx, b.onnx")
    ):
        fetch_model(str(two), None, cache)
    assert list(cache.iterdir()) == [], "nothing half-fetched is left in the cache"


def test_https_sources(https_files: tuple[str, Path], model: Path, cache: Path) -> None:
    base, root = https_files
    shutil.copy(model, root / "tariff.onnx")
    assert fetch_model(f"{base}/tariff.onnx", sha(model), cache).sha256 == sha(model)
    with pytest.raises(ModelSourceError, match="HTTP 404"):
        fetch_model(f"{base}/missing.onnx", None, cache)
    with pytest.raises(ModelSourceError, match="unreachable"):
        fetch_model("https://localhost:9/m.onnx", None, cache)


def test_an_mlflow_registry_version(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """models:/<name>/<version> from a real (file-backed) MLflow registry; the tracking URI from the environment."""
    tracking = register(tmp_path, model, "tariff")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert fetch_model("models:/tariff/1", sha(model), tmp_path / "cache").sha256 == sha(model)
    with pytest.raises(ModelSourceError, match=f"models:/tariff/9: not fetched from {tracking}"):
        fetch_model("models:/tariff/9", None, tmp_path / "cache")


# The program


def test_the_image_bakes_the_pinned_model_and_labels_its_digest(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    settings = {"name": "tariff", "version": "7", "source": str(model), "sha256": sha(model)}
    evaluation = evaluate("dev", {"mlserve:model": settings})
    image = evaluation.serving_image().inputs
    assert image["context"]["named"]["model"]["location"] == str(tmp_path / "cache" / sha(model))
    assert image["labels"]["mlserve.model-sha256"] == sha(model)
    assert image["labels"]["mlserve.model-version"] == "7"
    demo = evaluate("dev").serving_image().inputs
    assert image["tags"][0].split(":")[-1].startswith(f"tariff-7-{sha(model)[:12]}-"), "the tag names the model digest"
    assert image["tags"][0].split(":")[-1] != demo["tags"][0].split(":")[-1], "a new model, a new tag"


def test_a_bad_source_stops_the_program_naming_the_key(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    wrong = {"name": "tariff", "version": "7", "source": str(model), "sha256": "f" * 64}
    with pytest.raises(
        ConfigError, match=r"mlserve:model.source in Pulumi.dev.yaml: the model's sha256 is [0-9a-f]{64}"
    ):
        evaluate("dev", {"mlserve:model": wrong})
    unpinned = merged("prod", "mlserve:model", {"source": str(model)})
    with pytest.raises(
        ConfigError, match=re.escape("mlserve:model.sha256 in Pulumi.prod.yaml: required in a protected")
    ):
        evaluate("prod", {"mlserve:model": unpinned})
    with pytest.raises(
        ConfigError, match=re.escape("mlserve:model.directory in Pulumi.dev.yaml: renamed: set mlserve:model.source")
    ):
        evaluate("dev", {"mlserve:model": {"name": "m", "directory": str(model.parent)}})
    assert DEMO.is_file()
