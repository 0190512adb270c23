"""The model: load an ONNX file, describe it, warm it up and predict. No web code here."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail as OrtFail
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as OrtInvalidArgument

from serving.onnx_fastpath import session_run
from serving.onnx_graph import read_graph_facts

if TYPE_CHECKING:
    from serving.settings import Settings

# A pickle, skops file or MLflow model given as the model: the server runs ONNX only, the importer converts.
_IMPORT_HINT = (
    "; the server runs ONNX models: convert a scikit-learn, XGBoost, LightGBM or MLflow model with "
    "`.venv/bin/python -m importer MODEL -o model.onnx --name NAME --version VERSION --sample rows.csv`"
)
_FLOAT_INPUTS = {"tensor(float)": np.float32, "tensor(double)": np.float64}
# A column of a model with one input per column: its ONNX type -> (kind, numpy type). The kind is what
# a value must be (and what an error tells the client to send).
COLUMN_TYPES: dict[str, tuple[str, Any]] = {
    "tensor(float)": ("number", np.float32),
    "tensor(double)": ("number", np.float64),
    "tensor(int64)": ("integer", np.int64),
    "tensor(int32)": ("integer", np.int32),
    "tensor(string)": ("string", np.object_),
    "tensor(bool)": ("boolean", np.bool_),
}


class ModelLoadError(Exception):
    """The model file is missing or unusable; the message is one line for the operator."""


class UnsupportedMethod(Exception):
    """The request asked for something this model cannot do (e.g. probabilities of a regressor)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Open Inference Protocol name: FP32, INT64, BYTES, ...
    shape: tuple[int, ...]  # -1 for the batch (or any dynamic) dimension


@dataclass(frozen=True)
class Column:
    """One input of a model that takes one [N, 1] input per column."""

    name: str  # the name clients use (the model's feature_names, else the input's name)
    input: str  # the graph input
    kind: str  # number, integer, string or boolean
    dtype: Any  # numpy type fed to onnxruntime
    datatype: str  # Open Inference Protocol name
    categories: frozenset[str | int] | None = None  # the only values the model accepts (an encoder refusing others)
    known: tuple[str | int, ...] = ()  # the same, in the model's order (for error messages and samples)
    rank: int = 2  # [N, 1], or [N]

    @property
    def onnx_type(self) -> str:
        return {v: k for k, v in _ONNX_TO_V2.items()}.get(self.datatype, self.datatype)


class ColumnRows:
    """Rows of a typed-column model: one [N, 1] array per graph input, ready to feed."""

    __slots__ = ("count", "feed")

    def __init__(self, feed: dict[str, np.ndarray], count: int) -> None:
        self.feed = feed
        self.count = count

    def __len__(self) -> int:
        return self.count


Rows = np.ndarray | ColumnRows


class ModelRefused(Exception):
    """onnxruntime refused the values of a typed-column model (e.g. an encoder's unknown category)."""


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
    """An ONNX classifier or regressor: one 2-D float input, or one [N, 1] input per typed column."""

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
        metadata = self._session.get_modelmeta().custom_metadata_map
        facts = read_graph_facts(self.path.read_bytes())
        features = _metadata_list(metadata, "feature_names", self.path)
        self.feature_names: tuple[str, ...] | None = tuple(str(f) for f in features) if features is not None else None
        # One input per column (a ColumnTransformer over text and numbers), or today's one float matrix.
        self.columns: tuple[Column, ...] | None = None
        model_input = inputs[0]
        if len(inputs) == 1 and model_input.type in _FLOAT_INPUTS and len(model_input.shape or []) == 2:
            self._matrix_input(model_input)
        else:
            self.columns = self._column_inputs(inputs, facts.categories)
            self.feature_names = tuple(c.name for c in self.columns)
            self.n_features = len(self.columns)
        self.input = _spec(model_input)
        self.input_dtype = _FLOAT_INPUTS.get(model_input.type, np.float32)

        self._run = session_run(self._session)
        self._input_name = model_input.name
        self.outputs = tuple(_spec(o) for o in self._session.get_outputs())
        self._label_output, self._proba_output = self._find_outputs()
        # Labels the metadata lacks are in the classifier operator (a model exported by hand).
        classes = _metadata_list(metadata, "class_labels", self.path) or facts.class_labels
        self.class_labels: tuple[Any, ...] | None = tuple(classes) if classes is not None else None
        self.name = name or metadata.get("name") or self.path.stem
        self.version = version or metadata.get("version") or "1"
        self.is_classifier = self._proba_output is not None
        self._labels_only = [self._label_output]
        self._with_probabilities = [self._label_output, self._proba_output]
        self._fixed_cost = float("inf")
        self._row_cost = float("inf")

    def _matrix_input(self, model_input: ort.NodeArg) -> None:
        width = model_input.shape[1]
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

    def _column_inputs(
        self, inputs: list[ort.NodeArg], categories: dict[str, tuple[str | int, ...]]
    ) -> tuple[Column, ...]:
        """Each input one column: [N, 1] (or [N]) of a number, integer, string or boolean type."""
        names = (
            self.feature_names if self.feature_names is not None and len(self.feature_names) == len(inputs) else None
        )
        columns = []
        for position, node in enumerate(inputs):
            shape = node.shape or []
            if node.type not in COLUMN_TYPES or len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise ModelLoadError(
                    f"unsupported model {self.path}: input '{node.name}' is {node.type} with shape {shape}; the "
                    "server takes one 2-D float input of all features, or one [N, 1] input per column of type "
                    f"{', '.join(sorted(t[7:-1] for t in COLUMN_TYPES))}"
                )
            kind, dtype = COLUMN_TYPES[node.type]
            known = categories.get(node.name, ())
            name = names[position] if names is not None else node.name
            datatype = _ONNX_TO_V2[node.type]
            columns.append(Column(name, node.name, kind, dtype, datatype, frozenset(known) or None, known, len(shape)))
        return tuple(columns)

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
        self, rows: Rows, *, probabilities: bool = False, run_options: ort.RunOptions | None = None
    ) -> Prediction:
        """Score a [N, n_features] matrix, or typed columns. Thread-safe: sessions allow concurrent runs.

        Setting `run_options.terminate` from another thread stops the run (scoring timeouts).
        """
        if probabilities and self._proba_output is None:
            raise UnsupportedMethod(f"model '{self.name}' is not a classifier: it has no probabilities")
        names = self._with_probabilities if probabilities else self._labels_only
        if isinstance(rows, ColumnRows):
            results = self._run_columns(names, rows, run_options)
        else:
            if rows.dtype != self.input_dtype:
                rows = rows.astype(self.input_dtype)
            results = self._run(names, {self._input_name: rows}, run_options)
        labels = results[0]
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        return Prediction(labels, results[1] if probabilities else None)

    def _run_columns(self, names: list[Any], rows: ColumnRows, run_options: ort.RunOptions | None) -> list[Any]:
        try:
            return self._run(names, rows.feed, run_options)
        except (OrtFail, OrtInvalidArgument) as error:
            # The values passed every check the server can make; what the graph refused is in its message.
            message = str(error).rsplit("Status Message: ", 1)[-1].strip().splitlines()[0]
            raise ModelRefused(f"the model refused these values: {message}") from None

    def run_outputs(self, rows: Rows, names: list[str], run_options: ort.RunOptions | None = None) -> list[np.ndarray]:
        """Raw named outputs, for protocols that ask for tensors by name."""
        if isinstance(rows, ColumnRows):
            return self._run_columns(names, rows, run_options)
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
            batch: Rows = rng.normal(size=(rows, self.n_features)).astype(self.input_dtype)
            if self.columns is not None:
                batch = self.example_rows(rows)
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                self.predict(batch, probabilities=self.is_classifier)
                timings.append(time.perf_counter() - started)
            return min(timings)

        try:
            one, many = best_of(1), best_of(64)
        except ModelRefused:  # a typed model that refuses made-up values: no estimate, scored in the pool
            return
        self._fixed_cost = one
        self._row_cost = max(0.0, (many - one) / 63)

    def example_rows(self, count: int) -> ColumnRows:
        """Rows any typed-column model takes: zeros, false, and each text column's first known category."""
        feed = {}
        for column in self.columns or ():
            value: Any = column.known[0] if column.known else "" if column.kind == "string" else 0
            shape = (count, 1) if column.rank == 2 else (count,)
            feed[column.input] = np.full(shape, value, dtype=column.dtype)
        return ColumnRows(feed, count)

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
