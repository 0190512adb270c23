"""`python -m serving batch`: chunked scoring of CSV and Parquet, bad rows, atomic output, constant memory."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.__main__ import main
from tests.conftest import FEATURES, SAMPLE_ROWS, direct_predictions
from tests.serving.server import REPO, base_env


def write_csv(path: Path, rows: list[list], header: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 24)  # outputs keep long text fields; csv's default stops at 128 KiB
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", "batch", *args],
        cwd=REPO,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_scores_csv_keeping_input_columns(tmp_path: Path, reference: ort.InferenceSession) -> None:
    # An id column and the features in another order: columns are found by name.
    header = ["station_id", *FEATURES[::-1]]
    source = write_csv(tmp_path / "in.csv", [[f"s{i}", *row[::-1]] for i, row in enumerate(SAMPLE_ROWS)], header)
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"), "--method", "predict_proba")
    assert result.returncode == 0, result.stderr
    assert "scored 3 of 3 rows" in result.stderr
    out = read_csv(tmp_path / "out.csv")
    labels, probabilities = direct_predictions(reference, SAMPLE_ROWS)
    assert [row["station_id"] for row in out] == ["s0", "s1", "s2"]
    assert [int(row["prediction"]) for row in out] == labels
    assert np.allclose([[float(row["probability_0"]), float(row["probability_1"])] for row in out], probabilities)
    assert list(out[0])[: len(header)] == header


def test_bad_row_stops_by_default_and_leaves_no_output(tmp_path: Path) -> None:
    rows = [*SAMPLE_ROWS, [5, "humid", 10, 180, 3, 995, 2], *SAMPLE_ROWS]
    source = write_csv(tmp_path / "in.csv", rows, FEATURES)
    output = tmp_path / "out.csv"
    result = batch("--input", str(source), "--output", str(output))
    assert result.returncode == 1
    assert "row 4 (line 5): column 'Humidity': 'humid' is not a number" in result.stderr
    assert not output.exists()
    assert not list(tmp_path.glob(".mlserve-*")), "no temporary file is left behind"


def test_existing_output_survives_a_failed_run(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [[1, 2, 3]], ["Temperature_C", "Humidity", "Wind_speed_kmph"])
    output = tmp_path / "out.csv"
    output.write_text("yesterday's results\n")
    result = batch("--input", str(source), "--output", str(output))
    assert result.returncode == 1
    assert "lacks the model's features: Wind_bearing_degrees" in result.stderr
    assert output.read_text() == "yesterday's results\n"


def test_skip_sets_bad_rows_aside_and_loses_none(tmp_path: Path, reference: ort.InferenceSession) -> None:
    good = [SAMPLE_ROWS[i % 3] for i in range(25)]
    rows: list[list] = list(good)
    rows.insert(3, [5, 0.9, 10, 180, 3, "nan", 2])
    rows.insert(10, [5, 0.9, 10])
    rows.insert(20, [5, 0.9, 10, 180, 3, "", 2])
    source = write_csv(tmp_path / "in.csv", rows, FEATURES)
    result = batch(
        "--input", str(source), "--output", str(tmp_path / "out.csv"), "--on-error", "skip", "--chunk-rows", "7"
    )
    assert result.returncode == 0, result.stderr
    out = read_csv(tmp_path / "out.csv")
    errors = read_csv(tmp_path / "out.errors.csv")
    assert len(out) + len(errors) == len(rows)
    assert [int(e["row"]) for e in errors] == [4, 11, 21]
    assert "not a finite" in errors[0]["error"]
    assert "expected 7 values, got 3" in errors[1]["error"]
    assert "is not a number" in errors[2]["error"]
    assert [int(row["prediction"]) for row in out] == direct_predictions(reference, good)[0]


def test_parquet_in_parquet_out(tmp_path: Path, reference: ort.InferenceSession) -> None:
    table = pa.table({name: [row[i] for row in SAMPLE_ROWS] for i, name in enumerate(FEATURES)})
    pq.write_table(table, tmp_path / "in.parquet")
    result = batch("--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out.parquet"))
    assert result.returncode == 0, result.stderr
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == [*FEATURES, "prediction"]
    assert out.column("prediction").to_pylist() == direct_predictions(reference, SAMPLE_ROWS)[0]


def test_fsspec_urls_for_input_and_output(tmp_path: Path, reference: ort.InferenceSession) -> None:
    """The code path cloud URLs take (s3://, abfs://), with fsspec's in-memory filesystem."""
    source = write_csv(tmp_path / "in.csv", [*SAMPLE_ROWS, [1, 2, "bad", 4, 5, 6, 7]], FEATURES)
    fs = fsspec.filesystem("memory")
    fs.put_file(str(source), "/jobs/in.csv")
    code = main(["batch", "--input", "memory://jobs/in.csv", "--output", "memory://jobs/out.csv", "--on-error", "skip"])
    assert code == 0
    with fs.open("/jobs/out.csv", "r") as handle:
        out = list(csv.DictReader(handle))
    assert [int(row["prediction"]) for row in out] == direct_predictions(reference, SAMPLE_ROWS)[0]
    with fs.open("/jobs/out.errors.csv", "r") as handle:  # next to the output, on the same filesystem
        assert [row["row"] for row in csv.DictReader(handle)] == ["4"]


def batch_peak_rss_kib(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`python -m serving batch ARGS` in a child that prints its own peak resident memory last."""
    script = (
        "import resource, sys; from serving.__main__ import main; code = main(['batch', *sys.argv[1:]]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result, int(result.stdout.strip().splitlines()[-1])


def _peak_rss_kib(source: Path, output: Path) -> int:
    return batch_peak_rss_kib("--input", str(source), "--output", str(output), "--chunk-rows", "5000")[1]


@pytest.mark.timeout(600)
def test_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    for path, count in ((small, 20_000), (large, 400_000)):  # the large file is about 30 MB
        values = np.round(rng.normal(size=(count, 7)), 4)
        with path.open("w") as handle:
            handle.write(",".join(FEATURES) + "\n")
            np.savetxt(handle, values, delimiter=",", fmt="%.4f")
    small_peak = _peak_rss_kib(small, tmp_path / "small.out.csv")
    large_peak = _peak_rss_kib(large, tmp_path / "large.out.csv")
    assert sum(1 for _ in (tmp_path / "large.out.csv").open()) == 400_001
    # Twenty times the rows, yet the peak grows by far less than the file's 30 MB.
    assert large_peak - small_peak < 15 * 1024, (small_peak, large_peak)


def test_invalid_utf8_and_huge_fields_are_bad_rows_not_a_crash(tmp_path: Path) -> None:
    good = ",".join(map(str, SAMPLE_ROWS[0]))
    lines = [
        ",".join(["note", *FEATURES]).encode(),
        b"ok," + good.encode(),
        b"caf\xe9," + good.encode(),  # Latin-1, not UTF-8
        b"x," + b"7" * 200_000 + b"," + ",".join(map(str, SAMPLE_ROWS[0][1:])).encode(),
        ("long-note-" + "n" * 200_000 + "," + good).encode(),  # a long text column is fine
    ]
    source = tmp_path / "in.csv"
    source.write_bytes(b"\n".join(lines) + b"\n")
    stop = batch("--input", str(source), "--output", str(tmp_path / "stop.csv"))
    assert stop.returncode == 1
    assert "row 2 (line 3): not UTF-8 text" in stop.stderr
    assert "Traceback" not in stop.stderr
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"), "--on-error", "skip")
    assert result.returncode == 0, result.stderr
    assert "scored 2 of 4 rows" in result.stderr
    assert [row["note"][:10] for row in read_csv(tmp_path / "out.csv")] == ["ok", "long-note-"]
    errors = (tmp_path / "out.errors.csv").read_bytes()
    assert b"caf\xe9" in errors, "the bad row is kept byte for byte"
    assert b"is not a number" in errors or b"not a finite" in errors


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        b"\xef\xbb\xbf" + (",".join(FEATURES) + "\n" + ",".join(map(str, SAMPLE_ROWS[0])) + "\n").encode()
    )
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    assert next(iter(read_csv(tmp_path / "out.csv")[0])) == FEATURES[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_run_leaves_no_partial_files(tmp_path: Path, signum: int) -> None:
    source = write_csv(tmp_path / "in.csv", [SAMPLE_ROWS[0]] * 400_000, FEATURES)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving",
            "batch",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.csv"),
            "--on-error",
            "skip",
            "--chunk-rows",
            "1000",
        ],
        cwd=REPO,
        env=base_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".mlserve-*.partial")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert list(tmp_path.glob(".mlserve-*")) == [], stderr
    assert not (tmp_path / "out.csv").exists()
    assert process.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}; no output written" in stderr
    assert "Traceback" not in stderr


def test_progress_shows_percent_for_local_files(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [SAMPLE_ROWS[0]] * 2_000, FEATURES)
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"), "--progress")
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr
    assert "2000 rows" in result.stderr


def test_default_errors_file_is_named_as_the_batch_guide_says(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [SAMPLE_ROWS[0], ["x"] * len(FEATURES)], FEATURES)
    result = batch("--input", str(source), "--output", str(tmp_path / "scored.csv"), "--on-error", "skip")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scored.errors.csv").exists()
    assert f"1 bad rows in {tmp_path / 'scored.errors.csv'}" in result.stderr


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["x", "x", *FEATURES], "input header names x more than once"),
        (["prediction", *FEATURES], "input already has column(s) prediction"),
    ],
)
def test_ambiguous_columns_are_a_clear_error(tmp_path: Path, header: list[str], message: str) -> None:
    rows = [[1, 2, *SAMPLE_ROWS[0]]] if header[0] == "x" else [[1, *SAMPLE_ROWS[0]]]
    source = write_csv(tmp_path / "in.csv", rows, header)
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 1
    assert message in result.stderr


def test_a_directory_as_output_is_a_clear_error(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [SAMPLE_ROWS[0]], FEATURES)
    result = batch("--input", str(source), "--output", str(tmp_path))
    assert result.returncode == 1
    assert "is a directory; give a file name" in result.stderr


def test_output_mode_follows_the_umask(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [SAMPLE_ROWS[0]], FEATURES)
    result = subprocess.run(
        [
            "sh",
            "-c",
            f"umask 022 && {sys.executable} -m serving batch --input {source} --output {tmp_path / 'out.csv'}",
        ],
        cwd=REPO,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o644


def test_a_file_without_a_header_loses_no_row(tmp_path: Path) -> None:
    from tests.serving.models import linear_regressor

    model = linear_regressor(tmp_path / "sum.onnx", [1.0, 1.0], 0.0)  # no feature names
    source = tmp_path / "in.csv"
    source.write_text("1,2\n3,4\n")
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"), "--model", str(model))
    assert result.returncode == 0, result.stderr
    out = read_csv(tmp_path / "out.csv")
    assert [(row["column_1"], float(row["prediction"])) for row in out] == [("1", 3.0), ("3", 7.0)]
    named = write_csv(tmp_path / "named.csv", [SAMPLE_ROWS[0]], FEATURES)
    headerless = tmp_path / "headerless.csv"
    headerless.write_text(named.read_text().split("\n", 1)[1])
    refused = batch("--input", str(headerless), "--output", str(tmp_path / "x.csv"))
    assert refused.returncode == 1
    assert "line 1 is numbers, not a header" in refused.stderr


def test_the_output_format_follows_the_output_name(tmp_path: Path, reference: ort.InferenceSession) -> None:
    source = write_csv(tmp_path / "in.csv", [[f"s{i}", *row] for i, row in enumerate(SAMPLE_ROWS)], ["id", *FEATURES])
    result = batch("--input", str(source), "--output", str(tmp_path / "out.parquet"))
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    labels, _ = direct_predictions(reference, SAMPLE_ROWS)
    assert table.column("prediction").to_pylist() == labels
    assert table.column("id").to_pylist() == ["s0", "s1", "s2"]
    back = batch(
        "--input", str(tmp_path / "out.parquet"), "--output", str(tmp_path / "again.csv"), "--method", "predict"
    )
    assert back.returncode == 1, "the Parquet output already has a prediction column"
    pq.write_table(table.drop(["prediction"]), tmp_path / "in.parquet")
    csv_out = batch("--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "from-parquet.csv"))
    assert csv_out.returncode == 0, csv_out.stderr
    rows = read_csv(tmp_path / "from-parquet.csv")
    assert [int(r["prediction"]) for r in rows] == labels
    assert list(tmp_path.glob(".mlserve-*")) == []


def test_a_wide_header_is_read_in_linear_time(tmp_path: Path) -> None:
    """200,000 extra columns (a count per name was quadratic: 80,000 took over a minute); past the
    column bound the job stops at once, naming it."""
    from serving.batch import MAX_COLUMNS, Scorer
    from serving.runtime import ModelRuntime

    scorer = Scorer(ModelRuntime(REPO / "serving" / "model" / "model.onnx"), "predict")
    wide = [f"extra_{i}" for i in range(MAX_COLUMNS - len(FEATURES))] + FEATURES[::-1]
    started = time.monotonic()
    assert scorer.feature_columns(wide) == [len(wide) - 1 - i for i in range(len(FEATURES))]
    assert time.monotonic() - started < 5
    source = tmp_path / "wide.csv"
    source.write_text(",".join([*(f"x{i}" for i in range(200_000)), *FEATURES]) + "\n")
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 1
    assert f"input has 200007 columns, more than {MAX_COLUMNS}" in result.stderr


def test_a_line_past_the_line_bound_is_a_bad_row_read_past_in_bounded_memory(tmp_path: Path) -> None:
    from serving.batch import LINE_LIMIT

    good = ",".join(map(str, SAMPLE_ROWS[0]))
    source = tmp_path / "in.csv"
    with source.open("w") as handle:
        handle.write(",".join(FEATURES) + "\n" + good + "\n")
        handle.write("," * (LINE_LIMIT * 12) + "\n")  # 50 million commas: 1.1 GB once split
        handle.write(good + "\n")
    result, peak_kib = batch_peak_rss_kib(
        "--input", str(source), "--output", str(tmp_path / "out.csv"), "--on-error", "skip"
    )
    assert "scored 2 of 3 rows" in result.stderr
    errors = read_csv(tmp_path / "out.errors.csv")
    assert [(e["row"], e["error"]) for e in errors] == [
        ("2", f"line longer than {LINE_LIMIT} characters; the line could not be read")
    ]
    small = write_csv(tmp_path / "small.csv", [SAMPLE_ROWS[0]], FEATURES)
    _, baseline_kib = batch_peak_rss_kib("--input", str(small), "--output", str(tmp_path / "small.out.csv"))
    grown_mib = (peak_kib - baseline_kib) / 1024
    assert grown_mib < 100, f"the long line took {grown_mib:.0f} MiB more than a one-row file"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_parquet_file_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    import pyarrow as pa

    source = tmp_path / "in.parquet"
    if damage == "garbage":
        source.write_bytes(b"PAR1 this is not parquet at all" * 100)
    else:
        pq.write_table(pa.table({f: [row[i] for row in SAMPLE_ROWS] * 1000 for i, f in enumerate(FEATURES)}), source)
        source.write_bytes(source.read_bytes()[:-200])
    result = batch("--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: input is not a readable Parquet file"), line
    assert not (tmp_path / "out.csv").exists()
