"""The model: load an ONNX file, describe it, warm it up and predict. No web code here."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import onnxruntime as ort

from serving.onnx_fastpath import session_run

if TYPE_CHECKING:
    from serving.settings import Settings

# A pickle, skops file or MLflow model given as the model: the server runs ONNX only, the importer converts.
_IMPORT_HINT = (
    "; the server runs ONNX models: convert a scikit-learn, XGBoost, LightGBM or MLflow model with "
    "`.venv/bin/python -m importer MODEL -o model.onnx --name NAME --version VERSION --sample rows.csv`"
)
_FLOAT_INPUTS = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class ModelLoadError(Exception):
    """The model file is missing or unusable; the message is one line for the operator."""


class UnsupportedMethod(Exception):
    """The request asked for something this model cannot do (e.g. probabilities of a regressor)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Open Inference Protocol name: FP32, INT64, BYTES, ...
    shape: tuple[int, ...]  # -1 for the batch (or any dynamic) dimension


class Prediction(NamedTuple):
    """One batch's result. `labels` holds class labels or regression values."""

    labels: np.ndarray
    probabilities: np.ndarray | None


_ONNX_TO_V2 = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(string)": "BYTES",
    "tensor(bool)": "BOOL",
}


def _spec(node: ort.NodeArg) -> TensorSpec:
    shape = tuple(dim if isinstance(dim, int) else -1 for dim in (node.shape or []))
    return TensorSpec(node.name, _ONNX_TO_V2.get(node.type, node.type), shape)


def resolve_model_file(location: Path) -> Path:
    """A file as given; in a directory, model.onnx or else the one *.onnx below it."""
    if location.is_file():
        return location
    if not location.exists():
        raise ModelLoadError(f"model not found: {location} does not exist")
    direct = location / "model.onnx"
    if direct.is_file():
        return direct
    candidates = sorted(location.rglob("*.onnx"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelLoadError(f"model not found: no *.onnx file in {location}")
    names = ", ".join(str(c.relative_to(location)) for c in candidates)
    raise ModelLoadError(f"ambiguous model: {location} holds several ONNX files ({names})")


def _metadata_list(metadata: dict[str, str], key: str, path: Path) -> list[Any] | None:
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = [part.strip() for part in raw.split(",")]
    if not isinstance(value, list):
        raise ModelLoadError(f"invalid model metadata in {path}: '{key}' must be a JSON list")
    return value


class ModelRuntime:
    """An ONNX classifier or regressor with one 2-D numeric input."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        version: str | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        self.path = resolve_model_file(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises several unrelated types
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            hint = "" if self.path.suffix.lower() == ".onnx" else _IMPORT_HINT
            raise ModelLoadError(f"not a valid ONNX model: {self.path}: {first_line}{hint}") from None

        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelLoadError(
                f"unsupported model {self.path}: it has {len(inputs)} inputs ({names}); the server takes one 2-D "
                "float input of all features. Re-export with the columns concatenated into one input "
                "(skl2onnx: initial_types=[('input', FloatTensorType([None, n_features]))])"
            )
        model_input = inputs[0]
        if model_input.type not in _FLOAT_INPUTS or len(model_input.shape or []) != 2:
            raise ModelLoadError(
                f"unsupported model {self.path}: input '{model_input.name}' must be a 2-D float "
                f"tensor, found {model_input.type} with shape {model_input.shape}"
            )
        self.input = _spec(model_input)
        self.input_dtype = _FLOAT_INPUTS[model_input.type]

        metadata = self._session.get_modelmeta().custom_metadata_map
        width = model_input.shape[1]
        features = _metadata_list(metadata, "feature_names", self.path)
        if features is not None:
            self.feature_names: tuple[str, ...] | None = tuple(str(f) for f in features)
        else:
            self.feature_names = None
        if isinstance(width, int):
            self.n_features = width
        elif self.feature_names is not None:
            self.n_features = len(self.feature_names)
        else:
            raise ModelLoadError(
                f"unsupported model {self.path}: the input's width is dynamic and no "
                "'feature_names' metadata says how many columns it takes"
            )
        if self.feature_names is not None and len(self.feature_names) != self.n_features:
            raise ModelLoadError(
                f"invalid model metadata in {self.path}: {len(self.feature_names)} feature_names "
                f"for an input of width {self.n_features}"
            )

        self._run = session_run(self._session)
        self._input_name = model_input.name
        self.outputs = tuple(_spec(o) for o in self._session.get_outputs())
        self._label_output, self._proba_output = self._find_outputs()
        classes = _metadata_list(metadata, "class_labels", self.path)
        self.class_labels: tuple[Any, ...] | None = tuple(classes) if classes is not None else None
        self.name = name or metadata.get("name") or self.path.stem
        self.version = version or metadata.get("version") or "1"
        self.is_classifier = self._proba_output is not None
        self._labels_only = [self._label_output]
        self._with_probabilities = [self._label_output, self._proba_output]
        self._fixed_cost = float("inf")
        self._row_cost = float("inf")

    def _find_outputs(self) -> tuple[str, str | None]:
        """The first output is the prediction; a 2-D float output after it holds probabilities."""
        label = self.outputs[0].name
        for spec in self.outputs[1:]:
            if spec.datatype in ("FP32", "FP64") and len(spec.shape) == 2:
                return label, spec.name
        if len(self.outputs) > 1 and self.outputs[1].datatype.startswith("seq("):
            raise ModelLoadError(
                f"unsupported model {self.path}: probabilities are a ZipMap; export with "
                "options={id(classifier): {'zipmap': False}}"
            )
        return label, None

    def predict(
        self, rows: np.ndarray, *, probabilities: bool = False, run_options: ort.RunOptions | None = None
    ) -> Prediction:
        """Score a [N, n_features] matrix. Thread-safe: onnxruntime sessions allow concurrent runs.

        Setting `run_options.terminate` from another thread stops the run (scoring timeouts).
        """
        if probabilities and self._proba_output is None:
            raise UnsupportedMethod(f"model '{self.name}' is not a classifier: it has no probabilities")
        names = self._with_probabilities if probabilities else self._labels_only
        if rows.dtype != self.input_dtype:
            rows = rows.astype(self.input_dtype)
        results = self._run(names, {self._input_name: rows}, run_options)
        labels = results[0]
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        return Prediction(labels, results[1] if probabilities else None)

    def run_outputs(
        self, rows: np.ndarray, names: list[str], run_options: ort.RunOptions | None = None
    ) -> list[np.ndarray]:
        """Raw named outputs, for protocols that ask for tensors by name."""
        if rows.dtype != self.input_dtype:
            rows = rows.astype(self.input_dtype)
        outputs: list[np.ndarray] = self._run(names, {self._input_name: rows}, run_options)
        return outputs

    def warm_up(self) -> None:
        """Run the model so the first request does not pay for lazy initialisation, and time it.

        The timings give `cost_estimate`: a fixed cost per call plus a cost per row, each the best of
        a few runs (the model's own speed, not the machine's noise).
        """
        rng = np.random.default_rng(0)

        def best_of(rows: int) -> float:
            batch = rng.normal(size=(rows, self.n_features)).astype(self.input_dtype)
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                self.predict(batch, probabilities=self.is_classifier)
                timings.append(time.perf_counter() - started)
            return min(timings)

        one, many = best_of(1), best_of(64)
        self._fixed_cost = one
        self._row_cost = max(0.0, (many - one) / 63)

    def cost_estimate(self, rows: int) -> float:
        """Expected seconds to score `rows` rows (from warm-up); infinite before warm-up."""
        return self._fixed_cost + self._row_cost * rows

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in probability-column order, when the model says so."""
        if self._proba_output is None:
            return None
        if self.class_labels is not None:
            return list(self.class_labels)
        if self.outputs[0].datatype == "BYTES":
            # String labels: the columns' order is in the graph, not in anything onnxruntime shows.
            # Saying nothing beats numbering them; the model's `class_labels` metadata fixes it.
            return None
        width = self.probability_width
        return list(range(width)) if width > 0 else None

    @property
    def probability_width(self) -> int:
        """Probability columns, or 0 (no probabilities, or a width the graph leaves open)."""
        if self._proba_output is None:
            return 0
        width = next(s.shape[1] for s in self.outputs if s.name == self._proba_output)
        return width if isinstance(width, int) and width > 0 else 0


def load_runtime(settings: Settings) -> ModelRuntime:
    """Load and warm up the model the settings name. Raises ModelLoadError with a one-line message."""
    runtime = ModelRuntime(
        settings.model,
        name=settings.model_name,
        version=settings.model_version,
        intra_op_threads=settings.intra_op_threads,
    )
    runtime.warm_up()
    return runtime
