"""The stack's model: fetched from `mlserve:model.source`, pinned by `mlserve:model.sha256`, cached.

Runs when the program runs (preview and up), before any resource is declared: an unreachable
source, a digest mismatch or a file that is not an ONNX model stops the program with one message.
The result is a directory holding exactly `model.onnx`, what the image bakes in, kept in a
content-addressed cache (`~/.cache/mlserve/models/<sha256>/`, or $MLSERVE_MODEL_CACHE), so a pinned
model is fetched once and a preview needs no network. Beside it, `<sha256>.sources` records where
those bytes came from: a pinned digest is answered from the cache only for a source it was fetched
from (a changed source is fetched and checked again), and only while the file still has that digest.

Sources: a local file or directory, `https://…`, `s3://…`, `az://…` / `abfs://…` (fsspec with s3fs
or adlfs; the cloud SDKs' usual credentials), `models:/<name>/<version>` (MLflow's registry; the
tracking URI from MLFLOW_TRACKING_URI, as MLflow does). A `.tar.gz` (a SageMaker `model.tar.gz`) is
unpacked; a directory may be an MLflow model with an onnx flavor. Nothing is ever unpickled here: a
pickle, or an MLflow sklearn model, is refused with the `python -m importer` command that converts it.

A preview reads the bytes too, from the cache when they are there: the image provider (docker-build)
hashes the model's build context in its diff, so a preview without the file would show the image and
every deployment as changing. CI keeps the cache between runs by the stack files' hash instead
(`actions/cache` in the workflows), so previews and deploys of a released digest do not reach the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from stacks.config import ConfigError, ModelConfig

MODEL_FILE = "model.onnx"
SOURCES_SUFFIX = ".sources"  # <cache>/<sha256>.sources: every source those bytes were fetched from
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
IMPORTER_HINT = (
    "the program never unpickles (unpickling runs the file's code, here during preview and up): convert it once "
    "with `python -m importer <file or MLflow model directory> -o model.onnx`, check what it prints, and point "
    "mlserve:model.source at that ONNX file with the sha256 it prints"
)
DOWNLOAD_TIMEOUT_SECONDS = 60


class ModelSourceError(Exception):
    """What is wrong with the source, in words; the caller names the key."""


@dataclass(frozen=True)
class ModelArtifact:
    directory: str  # holds exactly model.onnx
    sha256: str  # of model.onnx: the bytes that ship


def default_cache() -> Path:
    return Path(os.environ.get("MLSERVE_MODEL_CACHE") or Path.home() / ".cache" / "mlserve" / "models")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(source: str, expected_sha256: str | None, cache: Path | None = None) -> ModelArtifact:
    cache = cache or default_cache()
    if expected_sha256:
        cached = _cached(cache / expected_sha256, source, expected_sha256)
        if cached is not None:
            return cached
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        work = Path(tmp)
        fetched = _download(source, work / "download")
        onnx_file = _onnx_in(_unpacked(fetched, work / "unpacked"))
        _check_onnx(onnx_file)
        actual = sha256_of(onnx_file)
        if expected_sha256 and actual != expected_sha256:
            earlier = _sources(cache / expected_sha256)
            where = f"; the pinned model was fetched from {', '.join(earlier)}" if earlier else ""
            raise ModelSourceError(
                f"the model's sha256 is {actual}, not the pinned {expected_sha256}: {source} is not what was "
                f"reviewed{where}; check it, then pin the new digest"
            )
        target = cache / actual
        if not _intact(target, actual):
            staged = work / "staged"
            staged.mkdir()
            shutil.copyfile(onnx_file, staged / MODEL_FILE)
            (staged / MODEL_FILE).chmod(0o644)
            staged.chmod(0o755)
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
            _sources_file(target).unlink(missing_ok=True)
        _record_source(target, source)
    return ModelArtifact(str(target), actual)


def _cached(directory: Path, source: str, sha256: str) -> ModelArtifact | None:
    """The cached model for a pinned digest, if it is intact and was fetched from this very source.

    A cache entry records every source its bytes were fetched from: a stack whose source changed but
    whose digest did not is fetched again (and refused if the new source holds other bytes), never
    answered with the old model. A file whose bytes no longer match its digest is dropped."""
    if not _intact(directory, sha256):
        shutil.rmtree(directory, ignore_errors=True)
        _sources_file(directory).unlink(missing_ok=True)
        return None
    if source not in _sources(directory):
        return None
    return ModelArtifact(str(directory), sha256)


def _intact(directory: Path, sha256: str) -> bool:
    model = directory / MODEL_FILE
    return model.is_file() and sha256_of(model) == sha256


def _sources(directory: Path) -> list[str]:
    try:
        return [line for line in _sources_file(directory).read_text().splitlines() if line]
    except OSError:
        return []


def _record_source(directory: Path, source: str) -> None:
    if source not in _sources(directory):
        with _sources_file(directory).open("a") as file:
            file.write(source + "\n")


def _sources_file(directory: Path) -> Path:
    """Beside the model's directory, not in it: the directory is the image's build context."""
    return directory.with_name(directory.name + SOURCES_SUFFIX)


def resolve(model: ModelConfig, stack: str) -> ModelArtifact | None:
    """The stack's model fetched and checked, or None for the bundled demo; errors name the key."""
    if model.source is None:
        return None
    try:
        artifact = fetch_model(model.source, model.sha256)
    except ModelSourceError as error:
        raise ConfigError(f"mlserve:model.source in Pulumi.{stack}.yaml: {error}") from None
    if model.sha256 is None:
        pulumi.log.warn(f"mlserve:model.source is not pinned; its model.onnx has sha256 {artifact.sha256}")
    return artifact


def _download(source: str, destination: Path) -> Path:
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    fetchers: dict[str, Callable[[str, Path], Path]] = {
        "https": _https,
        "s3": _fsspec,
        "az": _fsspec,
        "abfs": _fsspec,
        "abfss": _fsspec,
    }
    if source.startswith("models:/"):
        return _mlflow(source, destination)
    if scheme == "http":
        raise ModelSourceError(f"{source}: plain http is not accepted; use https://")
    if scheme in fetchers:
        return fetchers[scheme](source, destination)
    if scheme:
        raise ModelSourceError(
            f"{source}: unknown scheme {scheme}://; "
            "use a path, https://, s3://, az://, abfs:// or models:/<name>/<version>"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelSourceError(f"{source}: no such file or directory (relative paths are from the project directory)")
    return path


def _https(url: str, destination: Path) -> Path:
    destination.mkdir(parents=True)
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or MODEL_FILE
    target = destination / name
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, target.open("wb") as file:  # noqa: S310 (https only)
            shutil.copyfileobj(response, file, 1 << 20)
    except urllib.error.HTTPError as error:
        raise ModelSourceError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ModelSourceError(f"{url}: unreachable ({reason})") from None
    return target


def _fsspec(url: str, destination: Path) -> Path:
    try:
        import fsspec
    except ImportError:
        raise ModelSourceError("fsspec is not installed: pip install -r requirements-dev.txt") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise ModelSourceError(
            f"{url}: {error.name or 'the filesystem package'} is not installed (pip install -r requirements-dev.txt)"
        ) from None
    try:
        if fs.isdir(path):
            fs.get(path, str(destination), recursive=True)
            return destination
        destination.mkdir(parents=True)
        target = destination / str(path).rstrip("/").rsplit("/", 1)[-1]
        fs.get(path, str(target))
        return target
    except FileNotFoundError:
        raise ModelSourceError(f"{url}: not found") from None
    except Exception as error:  # the cloud SDKs raise many kinds; say which and why
        raise ModelSourceError(f"{url}: unreachable ({type(error).__name__}: {error})") from None


def _mlflow(uri: str, destination: Path) -> Path:
    try:
        import mlflow.artifacts
    except ImportError:
        raise ModelSourceError("mlflow is not installed: pip install -r requirements-dev.txt") from None
    destination.mkdir(parents=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except Exception as error:  # MlflowException, connection errors
        tracking = os.environ.get("MLFLOW_TRACKING_URI", "(MLFLOW_TRACKING_URI not set)")
        raise ModelSourceError(f"{uri}: not fetched from {tracking} ({type(error).__name__}: {error})") from None


def _unpacked(path: Path, destination: Path) -> Path:
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        destination.mkdir(parents=True)
        try:
            with tarfile.open(path) as archive:
                archive.extractall(destination, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise ModelSourceError(f"{path.name}: not a readable archive ({error})") from None
        return destination
    return path


def _onnx_in(path: Path) -> Path:
    """The one ONNX file a file, a directory or an MLflow model directory holds."""
    if path.is_file():
        if path.name.lower().endswith(PICKLE_SUFFIXES):
            raise ModelSourceError(f"{path.name} is a pickle: {IMPORTER_HINT}")
        return path
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        return _from_mlflow_model(path, yaml.safe_load(mlmodel.read_text()) or {})
    found = sorted(p for p in path.rglob("*.onnx") if p.is_file())
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(path)) for p in found) or "none"
        pickles = [p for p in path.rglob("*") if p.name.lower().endswith(PICKLE_SUFFIXES)]
        hint = f"; it holds a pickle ({pickles[0].name}): {IMPORTER_HINT}" if pickles and not found else ""
        raise ModelSourceError(f"expected exactly one .onnx file in the source, found {names}{hint}")
    return found[0]


def _from_mlflow_model(directory: Path, mlmodel: dict[str, Any]) -> Path:
    flavors = mlmodel.get("flavors") or {}
    if "onnx" in flavors:
        return directory / str(flavors["onnx"].get("data", MODEL_FILE))
    trained = sorted({"sklearn", "xgboost", "lightgbm"} & set(flavors))
    if trained:
        raise ModelSourceError(
            f"an MLflow {trained[0]} model is a pickle or a trained library's own format: {IMPORTER_HINT}"
        )
    raise ModelSourceError(
        f"an MLflow model with flavors {', '.join(flavors) or 'none'}: the stack serves the onnx flavor; "
        "the importer converts sklearn, xgboost and lightgbm models"
    )


BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "serving" / "model" / MODEL_FILE


def sample_row(path: Path) -> list[Any]:
    """One input row for smoke tests and examples: the model's `sample_input` metadata (written by
    `python -m importer`), else a row any model answers: zeros of the input's width or, for a model with one
    input per column, per column a zero, false, or the first category its encoder knows (else "")."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    metadata = {p.key: p.value for p in model.metadata_props}
    try:
        sample = json.loads(metadata.get("sample_input", "null"))
    except ValueError:
        sample = None
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
    if len(inputs) > 1 or (inputs and inputs[0].type.tensor_type.elem_type not in floats):
        if isinstance(sample, list) and len(sample) == len(inputs):
            return sample
        return [_column_default(model, i) for i in inputs]
    graph_input = inputs[0] if inputs else None
    dims = graph_input.type.tensor_type.shape.dim if graph_input is not None else []
    width = int(dims[1].dim_value) if len(dims) == 2 and dims[1].HasField("dim_value") else None
    numbers = isinstance(sample, list) and sample and all(isinstance(v, (int, float)) for v in sample)
    if numbers and (width is None or len(sample) == width):
        return [float(v) for v in sample]
    if width is None:
        try:
            width = len(json.loads(metadata.get("feature_names", "[]"))) or 1
        except ValueError:
            width = 1
    return [0.0] * width


def _column_default(model: Any, graph_input: Any) -> Any:
    """A value a column's input takes: text gets the first category a one-hot encoder on it knows."""
    import onnx

    kind = graph_input.type.tensor_type.elem_type
    if kind == onnx.TensorProto.STRING:
        for node in model.graph.node:
            if node.op_type == "OneHotEncoder" and node.input[:1] == [graph_input.name]:
                for attribute in node.attribute:
                    if attribute.name == "cats_strings" and attribute.strings:
                        return attribute.strings[0].decode()
        return ""
    if kind == onnx.TensorProto.BOOL:
        return False
    return 0.0 if kind in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16) else 0


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:  # onnx raises DecodeError, ValidationError, ...
        raise ModelSourceError(f"{path.name} is not a valid ONNX model ({type(error).__name__}: {error})") from None
