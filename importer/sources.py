"""Step 1, load: what users have (a pickle, a skops file, a booster file, an MLflow model directory or
`models:/` URI, an ONNX file) as an in-memory model, with what it says about its data and versions.

Unpickling runs code: import only files you trust. skops files are loaded only when every type in them
is trusted (scikit-learn's own, the MLflow model's `skops_trusted_types`, or `--trust`).
"""

from __future__ import annotations

import json
import pickle
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from importer.problems import ImportProblem, first_line

UNPICKLING_WARNING = "unpickling runs the code in the file: import only models you trust"
PICKLES = (".pkl", ".pickle", ".joblib")
XGBOOST_FILES = (".ubj", ".xgb")
# The distribution that provides each library's module (xgboost-cpu provides `xgboost`).
DISTRIBUTIONS = {"scikit-learn": ("scikit-learn",), "xgboost": ("xgboost", "xgboost-cpu"), "lightgbm": ("lightgbm",)}


@dataclass
class Loaded:
    """A model in memory: an estimator or booster (`library` sklearn, xgboost, lightgbm) or an ONNX file."""

    model: Any
    library: str
    feature_names: list[str] | None = None
    example: dict[str, Any] | None = None  # MLflow's input example, pandas "split" orient
    notes: list[str] = field(default_factory=list)  # version skew: said, never silent


def installed(library: str) -> str | None:
    for name in DISTRIBUTIONS.get(library, (library,)):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def skew(library: str, saved: str | None) -> list[str]:
    """A note when the model was saved with another version of its library than the one installed here."""
    here = installed(library)
    if not saved or not here or saved == here:
        return []
    return [
        f"version skew: saved with {library} {saved}, loaded with {library} {here}; the check compares with the "
        f"model as {library} {here} loads it, which may not predict as the original did. Fix: import in an "
        f"environment with {library}=={saved}, or re-save the model with {library} {here}"
    ]


def library_of(model: Any) -> str:
    root = type(model).__module__.split(".", 1)[0]
    return {"xgboost": "xgboost", "lightgbm": "lightgbm"}.get(root, "sklearn")


def load(source: str, trust: list[str]) -> Loaded:
    """Any source the importer takes; refusals name the step (load) and what to do."""
    if source.startswith("models:/"):
        return _registry(source, trust)
    path = Path(source).expanduser()
    if not path.exists():
        raise ImportProblem(f"{source}: no such file or directory")
    if path.is_dir():
        if not (path / "MLmodel").is_file():
            raise ImportProblem(f"{source}: a directory, but not an MLflow model (no MLmodel file)")
        return from_mlflow(path, trust)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return Loaded(path, "onnx")
    if suffix in PICKLES:
        return _with_skew(load_pickle(path))
    if suffix == ".skops":
        return _with_skew(load_skops(path, trust))
    if suffix in XGBOOST_FILES:
        return Loaded(_xgboost_booster(path), "xgboost")
    if suffix == ".txt" and _opening(path) == "tree":  # LightGBM's text format starts so
        return Loaded(_lightgbm_booster(path), "lightgbm")
    raise ImportProblem(
        f"{source}: expected .pkl, .joblib, .skops, .onnx, an XGBoost .ubj/.xgb or LightGBM .txt booster, "
        "an MLflow model directory or a models:/ URI"
    )


def _opening(path: Path) -> str:
    with path.open("rb") as file:
        return file.readline(64).strip().decode(errors="replace")


def _with_skew(loaded: tuple[Any, list[str]]) -> Loaded:
    model, notes = loaded
    return Loaded(model, library_of(model), notes=notes)


def load_pickle(path: Path) -> tuple[Any, list[str]]:
    """joblib or pickle, with the version warnings the libraries raise while unpickling turned into notes."""
    warnings.warn(f"{path}: {UNPICKLING_WARNING}", stacklevel=2)  # for callers other than the CLI (the stacks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import joblib

            model = joblib.load(path)
        except Exception:  # not a joblib file: plain pickle
            with path.open("rb") as file:
                try:
                    model = pickle.load(file)  # noqa: S301 - documented: the user's own model
                except Exception as error:
                    raise ImportProblem(
                        f"{path}: not a joblib or pickle file ({type(error).__name__}: {error}); "
                        "an MLflow model? pass its directory (the one with MLmodel)"
                    ) from None
    return model, _version_notes(caught)


def _version_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    notes: list[str] = []
    for warning in caught:
        original = getattr(warning.message, "original_sklearn_version", None)
        if original is not None:  # sklearn's InconsistentVersionWarning, once per estimator class
            notes += [n for n in skew("scikit-learn", str(original)) if n not in notes]
        elif "XGBoost" in str(warning.message) and "older" in str(warning.message):
            notes.append(f"version skew: {str(warning.message).strip().splitlines()[0]}")
    return notes


def load_skops(path: Path, trust: list[str], declared: list[str] | None = None) -> tuple[Any, list[str]]:
    """A skops file, refused while it holds a type nobody said to trust (skops' own check)."""
    try:
        import skops.io
    except ImportError:
        raise ImportProblem("skops is not installed: pip install -r requirements-dev.txt") from None
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as error:
        raise ImportProblem(f"{path}: not a skops file ({type(error).__name__}: {error})") from None
    unknown = sorted(set(untrusted) - set(declared or []) - set(trust))
    if unknown:
        raise ImportProblem(
            f"{path}: skops file with types nobody declared trusted: {', '.join(unknown)}; "
            f"if you trust them, pass --trust {','.join(unknown)}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = skops.io.load(path, trusted=list(untrusted))
        except Exception as error:
            raise ImportProblem(f"{path}: skops cannot load it ({type(error).__name__}: {error})") from None
    return model, _version_notes(caught)


def _xgboost_booster(path: Path) -> Any:
    try:
        import xgboost
    except ImportError:
        raise ImportProblem("xgboost is not installed: pip install -r requirements-dev.txt") from None
    try:
        return xgboost.Booster(model_file=str(path))
    except Exception as error:
        raise ImportProblem(f"{path}: not an XGBoost model file ({type(error).__name__}: {error})") from None


def _lightgbm_booster(path: Path) -> Any:
    try:
        import lightgbm
    except ImportError:
        raise ImportProblem("lightgbm is not installed: pip install -r requirements-dev.txt") from None
    try:
        return lightgbm.Booster(model_file=str(path))
    except Exception as error:
        raise ImportProblem(f"{path}: not a LightGBM model file ({type(error).__name__}: {error})") from None


def from_mlflow(directory: Path, trust: list[str] | None = None) -> Loaded:
    """An MLflow model directory: onnx as is; sklearn, xgboost and lightgbm in whatever format MLflow saved."""
    mlmodel = yaml.safe_load((directory / "MLmodel").read_text()) or {}
    flavors = mlmodel.get("flavors") or {}
    names = _signature_names(mlmodel)
    example = _input_example(directory, mlmodel)
    if "onnx" in flavors:
        return Loaded(directory / flavors["onnx"].get("data", "model.onnx"), "onnx", names, example)
    for flavor, file_key, version_key, library in (
        ("sklearn", "pickled_model", "sklearn_version", "scikit-learn"),
        ("lightgbm", "data", "lgb_version", "lightgbm"),
        ("xgboost", "data", "xgb_version", "xgboost"),
    ):
        if flavor not in flavors:
            continue
        conf = flavors[flavor] or {}
        path = directory / str(conf.get(file_key, "model.pkl"))
        model, notes = _mlflow_model(flavor, conf, path, trust or [])
        notes = [*skew(library, conf.get(version_key)), *(n for n in notes if library not in n)]
        return Loaded(model, library_of(model), names, example, notes)
    raise ImportProblem(
        f"{directory}: MLflow flavors {', '.join(flavors) or 'none'}; the importer takes onnx, sklearn, xgboost "
        "and lightgbm models: log the model with one of those flavors"
    )


def _mlflow_model(flavor: str, conf: dict[str, Any], path: Path, trust: list[str]) -> tuple[Any, list[str]]:
    serialization = conf.get("serialization_format")
    if serialization == "skops" or path.suffix == ".skops":
        return load_skops(path, trust, conf.get("skops_trusted_types"))
    if flavor == "xgboost":
        return _mlflow_xgboost(conf, path), []
    if flavor == "lightgbm" and not str(conf.get("model_class", "")).startswith("lightgbm.sklearn"):
        return _lightgbm_booster(path), []
    model, notes = load_pickle(path)
    return model, [f"{path.name} was unpickled ({serialization or 'pickle'}): {UNPICKLING_WARNING}", *notes]


def _mlflow_xgboost(conf: dict[str, Any], path: Path) -> Any:
    """An XGBoost model in its own format: a Booster, or the scikit-learn class MLflow recorded."""
    model_class = str(conf.get("model_class", "xgboost.core.Booster"))
    if model_class == "xgboost.core.Booster":
        return _xgboost_booster(path)
    import xgboost

    cls = getattr(xgboost, model_class.rsplit(".", 1)[-1], None)
    if cls is None:
        raise ImportProblem(f"{path}: unknown XGBoost model class {model_class}")
    model = cls()
    try:
        model.load_model(str(path))
    except Exception as error:
        raise ImportProblem(f"{path}: not an XGBoost model file ({type(error).__name__}: {error})") from None
    return model


def _signature_names(mlmodel: dict[str, Any]) -> list[str] | None:
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return None
    try:
        columns = json.loads(raw)
    except ValueError:
        return None
    names = [c.get("name") for c in columns if isinstance(c, dict)]
    if not names or not all(isinstance(n, str) for n in names):
        return None
    return [str(n) for n in names]


def _input_example(directory: Path, mlmodel: dict[str, Any]) -> dict[str, Any] | None:
    """The logged input example as {"columns": [...] | None, "data": [[...]]}, when there is one."""
    info = mlmodel.get("saved_input_example_info") or {}
    path = directory / str(info.get("artifact_path", "input_example.json"))
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except ValueError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("data"), list):
        return {"columns": raw.get("columns"), "data": raw["data"]}
    if isinstance(raw, list) and raw and isinstance(raw[0], list):
        return {"columns": None, "data": raw}
    return None


def _registry(uri: str, trust: list[str]) -> Loaded:
    """models:/name/version, models:/name@alias or models:/name/stage, from MLFLOW_TRACKING_URI's registry."""
    try:
        import mlflow.artifacts
    except ImportError:
        raise ImportProblem("mlflow is not installed: pip install -r requirements-dev.txt") from None
    destination = Path(tempfile.mkdtemp(prefix="mlserve-import-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except Exception as error:  # MlflowException, connection errors
        first = first_line(error)
        raise ImportProblem(f"{uri}: not fetched from the MLflow registry (MLFLOW_TRACKING_URI): {first}") from None
    if not (local / "MLmodel").is_file():
        raise ImportProblem(f"{uri}: fetched, but not an MLflow model (no MLmodel file)")
    return from_mlflow(local, trust)
