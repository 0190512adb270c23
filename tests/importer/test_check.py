"""The check: your rows decide, the report is a table, differences are refused with the step named."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from importer.__main__ import main
from importer.baseline import baseline
from tests.importer import corpus
from tests.importer.served import direct, score, scoring


def run(*args: str | Path) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def diabetes_forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    """The issue's model: StandardScaler + RandomForestRegressor on the diabetes data, and its 442 rows."""
    directory = tmp_path_factory.mktemp("diabetes")
    data = corpus.diabetes()
    model = corpus.scaled_forest_regressor(data.data, data.target)
    joblib.dump(model, directory / "model.pkl")
    data.data.to_csv(directory / "rows.csv", index=False)
    return model, directory / "model.pkl", directory / "rows.csv"


def test_a_forest_keeps_double_thresholds_and_agrees_on_all_442_rows(
    diabetes_forest: tuple[object, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, source, rows = diabetes_forest
    assert run(source, "-o", tmp_path / "m.onnx", "--name", "diabetes", "--version", "1", "--sample", rows,
               "--accept-differences") == 0  # fmt: skip
    data = corpus.diabetes().data
    (values,) = direct(tmp_path / "m.onnx", data.to_numpy())
    expected = model.predict(data)  # type: ignore[attr-defined]
    np.testing.assert_allclose(values.ravel(), expected, rtol=1e-4, atol=1e-4)
    ensembles = [n for n in onnx.load(str(tmp_path / "m.onnx")).graph.node if n.op_type == "TreeEnsembleRegressor"]
    assert [a.name for a in ensembles[0].attribute if a.name.startswith("nodes_values")] == ["nodes_values_as_tensor"]
    capsys.readouterr()


def test_the_double_forest_imports_without_accepting_differences_and_is_served_exactly(
    diabetes_forest: tuple[object, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server reads a double graph's values as float64: /score answers as scikit-learn on all 442 rows."""
    model, source, rows = diabetes_forest
    assert run(source, "-o", tmp_path / "m.onnx", "--name", "diabetes", "--version", "1", "--sample", rows) == 0
    out, err = capsys.readouterr()
    header, line = out.splitlines()[1:3]
    assert header.split() == ["output", "rows", "max", "abs", "diff", "max", "rel", "diff", "rows", "off"]
    assert [line.split()[i] for i in (0, 1, -1)] == ["variable", "442", "0"]  # no row off
    assert "error" not in err
    assert "differ" not in err
    data = corpus.diabetes().data
    with capsys.disabled(), scoring(tmp_path / "m.onnx") as http:
        served = np.ravel(score(http, data.to_numpy())["predictions"])
    # Equal but for the float32 output (a branch taken the other way would be off by whole units).
    np.testing.assert_allclose(served, model.predict(data), rtol=1e-6, atol=0)  # type: ignore[attr-defined]


def test_without_your_rows_the_verdict_is_weak_and_relative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = corpus.diabetes()
    joblib.dump(Ridge().fit(data.data.to_numpy(), data.target), tmp_path / "ridge.pkl")
    assert run(tmp_path / "ridge.pkl", "-o", tmp_path / "m.onnx", "--name", "ridge", "--version", "1") == 0
    out, err = capsys.readouterr()
    assert "check on made-up rows" in out
    assert "warning: a weak check: made-up rows, not your data; pass --sample rows.csv" in err
    assert "sample_input" not in {p.key for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}


def test_a_step_the_converter_does_not_know_is_refused_at_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(1).normal(size=(20, 4))
    joblib.dump(make_pipeline(StandardScaler(), corpus.Doubler()).fit(x, x[:, 0]), tmp_path / "m.pkl")
    assert run(tmp_path / "m.pkl", "-o", tmp_path / "m.onnx", "--name", "m", "--version", "1") == 2
    (error,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert error.startswith("error: convert: skl2onnx cannot convert the Pipeline(standardscaler: StandardScaler -> "
                            "doubler: Doubler)")  # fmt: skip
    assert "replace that step" in error


def test_the_baseline_has_counts_means_quantiles_and_category_frequencies() -> None:
    frame = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0], "city": ["Turku", "Turku", "Oulu", None]})
    stats = json.loads(baseline(frame))
    assert stats["rows"] == 4
    age = stats["columns"]["age"]
    assert (age["count"], age["mean"], age["min"], age["max"]) == (4, 35.0, 20.0, 50.0)
    assert age["quantiles"]["0.5"] == 35.0
    assert stats["columns"]["city"] == {
        "count": 3,
        "categories": 2,
        "frequencies": {"Turku": 0.666667, "Oulu": 0.333333},
    }


def test_the_baseline_describes_predictions_labels_as_categories_and_values_as_numbers() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    labels = json.loads(baseline(frame, np.array([0, 1, 1, 1])))["predictions"]
    assert labels == {"count": 4, "categories": 2, "frequencies": {"1": 0.75, "0": 0.25}}
    values = json.loads(baseline(frame, np.array([[0.5], [1.5], [2.5], [3.5]], dtype=np.float32)))["predictions"]
    assert (values["count"], values["mean"], values["min"], values["max"]) == (4, 2.0, 0.5, 3.5)
    assert "predictions" not in json.loads(baseline(frame))


def test_trees_beside_a_step_without_a_double_kernel_keep_float32_and_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.ensemble import RandomForestRegressor, VotingRegressor
    from sklearn.svm import SVR

    data = corpus.diabetes()
    members = [("forest", RandomForestRegressor(n_estimators=3, random_state=0)), ("svr", SVR())]
    joblib.dump(VotingRegressor(members).fit(data.data, data.target), tmp_path / "m.pkl")
    data.data.iloc[:50].to_csv(tmp_path / "rows.csv", index=False)
    code = run(tmp_path / "m.pkl", "-o", tmp_path / "m.onnx", "--name", "m", "--version", "1", "--sample",
               tmp_path / "rows.csv", "--accept-differences")  # fmt: skip
    assert code == 0
    assert "warning: a step has no float64 converter: tree thresholds are float32" in capsys.readouterr().err
    assert onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def with_rows(tmp_path: Path) -> list[str | Path]:
    """The importer's arguments for m.pkl with the rows in rows.csv."""
    return [
        tmp_path / "m.pkl",
        "-o",
        tmp_path / "m.onnx",
        "--name",
        "m",
        "--version",
        "1",
        "--sample",
        tmp_path / "rows.csv",
    ]


def test_rows_of_another_width_are_refused_at_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(2).normal(size=(20, 4))
    joblib.dump(Ridge().fit(x, x[:, 0]), tmp_path / "m.pkl")
    (tmp_path / "rows.csv").write_text("a,b,c\n1,2,3\n")
    assert run(*with_rows(tmp_path)) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert error == (
        "error: check: --sample rows.csv: 3 columns for a model of 4 features without names; "
        "pass --features a,b,c to take the model's columns by name"
    )


def test_a_float32_tree_graph_that_differs_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = corpus.diabetes()
    model = make_pipeline(StandardScaler(), corpus.xgb_regressor(data.data, data.target)).fit(data.data, data.target)
    joblib.dump(model, tmp_path / "m.pkl")
    data.data.to_csv(tmp_path / "rows.csv", index=False)
    assert run(*with_rows(tmp_path)) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert "rows close to a tree's threshold take the other branch in float32" in error
