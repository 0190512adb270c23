"""The mixed-type benchmark model: a bank-marketing-like pipeline with text columns, one ONNX input per
column (what skl2onnx makes of a ColumnTransformer over a pandas frame). Built on the fly: no binary in
the repository, the same model every time (fixed generator state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLUMNS = ["age", "job", "marital", "education", "balance", "campaign"]
RECORD = {"age": 41.0, "job": "technician", "marital": "married", "education": "secondary", "balance": 1270.5,
          "campaign": 2}  # fmt: skip
JOBS = ["admin.", "blue-collar", "entrepreneur", "management", "retired", "services", "student", "technician"]


def build(path: Path) -> Path:
    import onnx
    import pandas as pd
    from onnx import helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    rng = np.random.default_rng(42)
    rows = 2000
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows).astype(np.float64),
            "job": rng.choice(JOBS, rows),
            "marital": rng.choice(["married", "single", "divorced"], rows),
            "education": rng.choice(["primary", "secondary", "tertiary", "unknown"], rows),
            "balance": rng.normal(1500, 900, rows),
            "campaign": rng.integers(1, 10, rows).astype(np.int64),
        }
    )
    target = (frame["balance"] / 1000 + (frame["job"] == "retired") + rng.normal(0, 1, rows) > 2).astype(np.int64)
    columns = ColumnTransformer(
        [
            ("numbers", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age", "balance"]),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["job", "marital"]),
            ("ordinal", OrdinalEncoder(), ["education"]),
            ("count", "passthrough", ["campaign"]),
        ]
    )
    classifier = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0)
    pipeline = Pipeline([("columns", columns), ("classifier", classifier)]).fit(frame, target)
    types = {"age": FloatTensorType, "balance": FloatTensorType, "campaign": Int64TensorType}
    initial = [(c, types.get(c, StringTensorType)([None, 1])) for c in COLUMNS]
    model = to_onnx(
        pipeline,
        initial_types=initial,
        options={id(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    helper.set_model_props(model, {"name": "bank-mixed", "version": "1"})
    onnx.save_model(model, path)
    return path
