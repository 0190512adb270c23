"""A pipeline over a frame with text columns imports as one typed input per column, and the server answers
as scikit-learn on every row."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest

from importer.__main__ import main
from tests.importer.served import score, scoring
from tests.serving.models import bank_frame, bank_pipeline


def test_text_columns_import_as_typed_inputs_and_serve_as_the_original(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = bank_frame().fillna({"age": 40.0})
    pipeline = bank_pipeline(frame)
    joblib.dump(pipeline, tmp_path / "bank.pkl")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "bank.onnx"
    code = main([str(tmp_path / "bank.pkl"), "-o", str(output), "--name", "bank", "--version", "1",
                 "--sample", str(tmp_path / "rows.csv")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"check on --sample rows.csv ({len(frame)} rows)" in out

    model = onnx.load(str(output))
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert types["job"] == types["marital"] == types["education"] == onnx.TensorProto.STRING
    assert types["age"] == types["balance"] == onnx.TensorProto.FLOAT
    metadata = {p.key: p.value for p in model.metadata_props}
    sample = json.loads(metadata["sample_input"])
    assert sample[frame.columns.get_loc("job")] == frame["job"].iloc[0]
    assert json.loads(metadata["baseline"])["columns"]["job"]["categories"] == frame["job"].nunique()

    rows = frame.astype(object).to_numpy()
    with capsys.disabled(), scoring(output) as http:
        assert score(http, rows)["predictions"] == pipeline.predict(frame).tolist()
        answer = score(http, rows, "predict_proba")
    assert answer["classes"] == ["no", "yes"]
    np.testing.assert_allclose(answer["predictions"], pipeline.predict_proba(frame), rtol=1e-4, atol=1e-4)


def test_an_unknown_category_is_refused_naming_its_column(tmp_path: Path) -> None:
    """skl2onnx puts a Gather between a text column's input and its OneHotEncoder in a ColumnTransformer:
    the refusal still names the column and the categories the encoder knows."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"tenure": rng.normal(size=60), "plan": rng.choice(["basic", "plus", "pro"], size=60)})
    labels = np.where((frame["tenure"] > 0) | (frame["plan"] == "basic"), "churn", "stay")
    columns = ColumnTransformer([("numbers", StandardScaler(), ["tenure"]), ("plan", OneHotEncoder(), ["plan"])])
    joblib.dump(make_pipeline(columns, LogisticRegression()).fit(frame, labels), tmp_path / "churn.pkl")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "churn.onnx"
    code = main([str(tmp_path / "churn.pkl"), "-o", str(output), "--name", "churn", "--version", "1",
                 "--sample", str(tmp_path / "rows.csv")])  # fmt: skip
    assert code == 0
    assert "Gather" in {n.op_type for n in onnx.load(str(output)).graph.node}
    with scoring(output) as http:
        refused = http.post("/score", json={"data": [{"tenure": 0.5, "plan": "platinum"}]})
    assert refused.status_code == 400
    assert "column 'plan': unknown category 'platinum'" in refused.json()["error"]
    assert "basic, plus, pro" in refused.json()["error"]


@pytest.mark.parametrize("estimator", ["forest classifier", "boosted regressor"])
def test_text_columns_before_trees_serve_as_the_original(tmp_path: Path, estimator: str) -> None:
    """Trees after a ColumnTransformer with a text column: a typed input per column and double thresholds
    together; the server answers as scikit-learn on every row."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, size=200).astype(float),
            "tenure": rng.normal(size=200),
            "plan": rng.choice(["basic", "plus", "pro"], size=200),
        }
    )
    columns = ColumnTransformer([("numbers", StandardScaler(), ["age", "tenure"]), ("plan", OneHotEncoder(), ["plan"])])
    if estimator == "forest classifier":
        target = np.where((frame["tenure"] > 0) | (frame["plan"] == "basic"), "churn", "stay")
        pipeline = make_pipeline(columns, RandomForestClassifier(n_estimators=20, random_state=0))
    else:
        target = frame["age"] * 0.1 + frame["tenure"] + (frame["plan"] == "pro")
        pipeline = make_pipeline(columns, GradientBoostingRegressor(random_state=0))
    pipeline.fit(frame, target)
    joblib.dump(pipeline, tmp_path / "model.pkl")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "model.onnx"
    code = main([str(tmp_path / "model.pkl"), "-o", str(output), "--name", "trees", "--version", "1",
                 "--sample", str(tmp_path / "rows.csv")])  # fmt: skip
    assert code == 0
    with scoring(output) as http:
        response = http.post("/score", json={"data": frame.to_dict(orient="records")})
    assert response.status_code == 200, response.text
    served, expected = response.json()["predictions"], pipeline.predict(frame)
    if estimator == "forest classifier":
        assert [str(v) for v in served] == [str(v) for v in expected]
    else:
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-4)
