"""The drift report on a captured week in a directory: verdicts, summary, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from serving.drift.__main__ import main
from tests.conftest import DEMO_MODEL
from tests.drift.week import ENDPOINT, OURS, SAGEMAKER, SINCE, UNTIL, baseline_rows, model_with_baseline, write_week
from tests.serving.server import REPO

PERIOD = ["--since", SINCE.isoformat(), "--until", UNTIL.isoformat()]
COLUMNS = {"Temperature_C", "Humidity", "Wind_speed_kmph", "Wind_bearing_degrees", "Visibility_km",
           "Pressure_millibars", "Current_weather_condition"}  # fmt: skip


@pytest.fixture(scope="module")
def weeks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weeks")


@pytest.fixture(scope="module")
def model(weeks: Path) -> Path:
    return model_with_baseline(weeks / "model.onnx")


def report(tmp_path: Path, *args: str | Path) -> tuple[int, dict, str]:
    out = tmp_path / "report"
    code = main([*map(str, args), "--output-dir", str(out)])
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return code, summary, str(out)


def drifted(summary: dict) -> set[str]:
    return {name for name, verdict in summary["columns"].items() if verdict["drifted"]}


def test_a_shift_in_two_columns_of_our_json_capture_is_found_in_exactly_those(
    tmp_path: Path, weeks: Path, model: Path
) -> None:
    source = write_week(weeks / "json-shifted", OURS, ("Temperature_C", "Wind_bearing_degrees"))
    code, summary, _ = report(tmp_path, "--source", source, "--model", model, *PERIOD)
    assert code == 1
    assert drifted(summary) == {"Temperature_C", "Wind_bearing_degrees"}
    assert summary["drifted_columns"] == ["Temperature_C", "Wind_bearing_degrees"]
    assert summary["predictions"]["drifted"] is False  # the model hardly uses those columns
    assert (summary["records"], summary["rows"], summary["records_skipped"]) == (336, 1680, 0)
    assert (summary["records_outside_period"], summary["records_of_other_models"]) == (0, 0)
    temperature = summary["columns"]["Temperature_C"]
    assert temperature["statistic"] == "wasserstein_distance_in_std"
    assert temperature["value"] > 0.5 > temperature["threshold"]


def test_unshifted_sagemaker_csv_capture_shows_no_drift(tmp_path: Path, weeks: Path, model: Path) -> None:
    source = write_week(weeks / "csv", SAGEMAKER)
    code, summary, out = report(tmp_path, "--source", source, "--model", model, *PERIOD)
    assert code == 0
    assert drifted(summary) == set()
    assert set(summary["columns"]) == COLUMNS
    assert summary["predictions"] == {**summary["predictions"], "statistic": "population_stability_index",
                                      "drifted": False}  # fmt: skip
    assert summary["rows"] == 1680
    assert (Path(out) / "report.html").stat().st_size > 1_000_000  # plotly.js inline


def test_a_shift_in_sagemaker_csv_capture_is_found(tmp_path: Path, weeks: Path, model: Path) -> None:
    source = write_week(weeks / "csv-shifted", SAGEMAKER, ("Temperature_C",))
    markdown = tmp_path / "summary.md"
    code, summary, _ = report(tmp_path, "--source", source, "--model", model, *PERIOD, "--markdown", markdown)
    assert (code, drifted(summary)) == (1, {"Temperature_C"})
    assert "| Temperature_C | wasserstein distance in std |" in markdown.read_text()
    assert "**drift**" in markdown.read_text()


def test_the_source_may_be_the_prefix_above_the_endpoint_or_one_variant(
    tmp_path: Path, weeks: Path, model: Path
) -> None:
    root = weeks / "both"
    write_week(root, SAGEMAKER)
    code, summary, _ = report(tmp_path, "--source", root, "--model", model, *PERIOD)
    assert (code, summary["rows"]) == (0, 1680)
    code, summary, _ = report(tmp_path, "--source", root / ENDPOINT / "AllTraffic", "--model", model, *PERIOD)
    assert (code, summary["rows"]) == (0, 1680)


def test_only_the_period_is_read(tmp_path: Path, weeks: Path, model: Path) -> None:
    source = write_week(weeks / "period", SAGEMAKER)
    before = source / "AllTraffic" / f"{SINCE:%Y/%m/%d}" / "01"
    before.mkdir(parents=True)
    (before / "unreadable.jsonl").write_text("not a record\n")  # in no hour folder of the period: never read
    day = ["--since", SINCE.isoformat(), "--until", (SINCE + timedelta(days=1)).isoformat(), "--min-rows", "50"]
    _, summary, _ = report(tmp_path, "--source", source, "--model", model, *day)
    assert (summary["records"], summary["rows"], summary["records_skipped"]) == (48, 240, 0)


def test_records_of_an_earlier_model_version_are_counted_not_judged(tmp_path: Path, weeks: Path, model: Path) -> None:
    source = write_week(weeks / "two-versions", OURS)
    earlier = write_week(weeks / "earlier", OURS, ("Temperature_C",), seed=3)  # served by version 0, shifted
    for path in earlier.rglob("*.jsonl"):
        target = source / path.relative_to(earlier)
        target.write_text(path.read_text().replace('"modelVersion": "1"', '"modelVersion": "0"'))
    code, summary, _ = report(tmp_path, "--source", source, "--model", model, *PERIOD)
    assert code == 0
    assert (summary["records"], summary["records_of_other_models"], summary["rows"]) == (672, 336, 1680)


def test_unreadable_records_are_counted_and_described_not_fatal(tmp_path: Path, weeks: Path, model: Path) -> None:
    source = write_week(weeks / "broken", OURS)
    hour = source / OURS.folder / f"{SINCE:%Y/%m/%d/%H}"
    (hour / "broken.jsonl").write_text('{"captureData": {}}\nnot json\n')
    code, summary, _ = report(tmp_path, "--source", source, "--model", model, *PERIOD)
    assert code == 0
    assert summary["records_skipped"] == 2
    assert any("broken.jsonl line 2: not a capture record" in p for p in summary["problems"])


def test_a_model_without_a_baseline_takes_one_from_rows(tmp_path: Path, weeks: Path) -> None:
    source = write_week(weeks / "rows", OURS, ("Temperature_C",))
    rows = baseline_rows(tmp_path / "rows.csv")
    code, summary, _ = report(tmp_path, "--source", source, "--model", DEMO_MODEL, "--baseline-rows", rows, *PERIOD)
    assert (code, drifted(summary)) == (1, {"Temperature_C"})
    assert summary["predictions"]["drifted"] is False
    assert summary["baseline"] == "2000 rows of rows.csv"


def test_a_baseline_without_predictions_leaves_them_unjudged(tmp_path: Path, weeks: Path) -> None:
    source = write_week(weeks / "old-import", SAGEMAKER)
    model = model_with_baseline(tmp_path / "old.onnx", predictions=False)
    code, summary, _ = report(tmp_path, "--source", source, "--model", model, *PERIOD)
    assert code == 0
    assert summary["predictions"]["drifted"] is None
    assert "re-import the model" in summary["predictions"]["note"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "DEMO"], "has no baseline statistics: import it with `python -m importer"),
        (["--source", "/nonexistent"], "--source /nonexistent: no such directory"),
        (["--since", "last monday"], "--since 'last monday': expected a UTC date or time"),
        (["--days", "0"], "--days 0: expected more than 0"),
        (["--since", "2026-12-08", "--until", "2026-12-09"], "too few captured rows to judge"),
        (["--source", "ftp://host/x"], "expected a directory, s3://bucket/prefix"),
        (["--source", "az://capture/x"], "say which storage account"),
        (["--source", "s3://capture/x", "--endpoint-url", "not a url"], "s3://capture/x: Invalid endpoint: not a url"),
        (["--baseline-rows", "/nonexistent.csv"], "--baseline-rows /nonexistent.csv: not readable"),
        (["--numeric-threshold", "-1"], "--numeric-threshold -1: expected a number above 0"),
        (["--model", "/nonexistent.onnx"], "model not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, weeks: Path, model: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    source = weeks / "bad" / ENDPOINT
    if not source.exists():
        write_week(weeks / "bad", SAGEMAKER)
    defaults = {"--source": str(source), "--model": str(model)}
    given = dict(zip(arguments[::2], arguments[1::2], strict=True))
    if given.get("--model") == "DEMO":
        given["--model"] = str(DEMO_MODEL)
    argv = [part for key, value in {**defaults, **given}.items() for part in (key, value)]
    if "--since" not in given and "--days" not in given:
        argv += PERIOD
    code, _, _ = report(tmp_path, *argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def run_cli(*args: str, blocked: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m serving drift ARGS` in a fresh interpreter; `blocked` is a module it cannot import."""
    code = f"import sys; sys.modules[{blocked!r}] = None; " if blocked else ""
    code += "import sys; from serving.__main__ import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "drift", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_the_command_line_reports_drift_by_its_exit_code(weeks: Path, model: Path, tmp_path: Path) -> None:
    source = write_week(weeks / "cli", SAGEMAKER, ("Temperature_C",))
    result = run_cli("--source", str(source), "--model", str(model), *PERIOD, "--output-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "Temperature_C: wasserstein_distance_in_std" in result.stdout
    assert result.stderr.strip() == "drift past the threshold in Temperature_C"


def test_without_its_libraries_the_command_says_what_to_install(tmp_path: Path) -> None:
    result = run_cli("--source", str(tmp_path), blocked="scipy")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: the drift report needs scipy, which the serving image leaves out: "
        "pip install --require-hashes -r serving/requirements-drift.txt"
    )
