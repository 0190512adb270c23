"""Every model of the corpus, imported from the user's rows, answers as the original library on every row:
through onnxruntime, through each of the server's routes (/score, /invocations JSON and CSV, v2 infer) and
through the batch CLI. Labels equal, values within 1e-4 + 1e-4 x |original|."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest

from importer.__main__ import main
from serving.__main__ import main as serving_main
from tests.importer.corpus import CASES, Case
from tests.importer.served import direct, every_route, score, scoring

RTOL = ATOL = 1e-4


def library_answers(model: Any, frame: pd.DataFrame, classifier: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels or values, probabilities) as the model's own library computes them on the rows."""
    if type(model).__name__ == "Booster":
        if type(model).__module__.startswith("xgboost"):
            import xgboost

            raw = np.asarray(model.predict(xgboost.DMatrix(frame)))
        else:
            raw = np.asarray(model.predict(frame))
        if not classifier:
            return raw, None
        return (raw > 0.5).astype(np.int64), np.column_stack([1 - raw, raw])
    if classifier:
        return np.asarray(model.predict(frame)), np.asarray(model.predict_proba(frame))
    return np.asarray(model.predict(frame)), None


def imported(case: Case, tmp_path: Path) -> tuple[Any, Path, pd.DataFrame]:
    frame = case.data.data
    model = case.fit(frame, case.data.target)
    source = case.save(model, tmp_path)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "model.onnx"
    code = main([str(source), "-o", str(output), "--name", case.name, "--version", "1", "--sample",
                 str(tmp_path / "rows.csv")])  # fmt: skip
    assert code == 0
    return model, output, frame


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_imported_model_answers_as_the_original_on_every_row(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, output, frame = imported(case, tmp_path)
    report = capsys.readouterr().out
    assert f"check on --sample rows.csv ({len(frame)} rows)" in report
    expected, probabilities = library_answers(model, frame, case.classifier)
    rows = frame.to_numpy(dtype=np.float64)

    answers = direct(output, rows)
    if case.classifier:
        assert [str(v) for v in answers[0].ravel()] == [str(v) for v in expected]
        np.testing.assert_allclose(answers[1], probabilities, rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_allclose(answers[0].ravel(), expected, rtol=RTOL, atol=ATOL)

    with capsys.disabled(), scoring(output) as http:  # the server's log writes to the real stdout
        served = score(http, rows)["predictions"]
        if case.classifier:
            assert [str(v) for v in served] == [str(v) for v in expected]
            with_probabilities = score(http, rows, "predict_proba")
            np.testing.assert_allclose(with_probabilities["predictions"], probabilities, rtol=RTOL, atol=ATOL)
            classes = getattr(model, "classes_", [0, 1])
            assert with_probabilities["classes"] == [v.item() if hasattr(v, "item") else v for v in classes]
        else:
            np.testing.assert_allclose(np.ravel(served), expected, rtol=RTOL, atol=ATOL)
        routes = every_route(http, frame, case.name)
    code = serving_main(["batch", "--model", str(output), "--input", str(tmp_path / "rows.csv"),
                         "--output", str(tmp_path / "scored.csv")])  # fmt: skip
    assert code == 0
    routes["batch CLI"] = pd.read_csv(tmp_path / "scored.csv")["prediction"].tolist()
    for route, answers in routes.items():
        assert len(answers) == len(frame), route
        if case.classifier:
            assert [str(v) for v in answers] == [str(v) for v in expected], route
        else:
            np.testing.assert_allclose([float(v) for v in answers], expected, rtol=RTOL, atol=ATOL, err_msg=route)

    metadata = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert json.loads(metadata["sample_input"]) == frame.iloc[0].tolist()
    assert json.loads(metadata["baseline"])["rows"] == len(frame)
