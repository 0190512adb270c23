"""Batch scoring: `python -m serving batch --input IN --output OUT`, in chunks and constant memory.

CSV always; Parquet when pyarrow is installed; `s3://`, `abfs://`... URLs when fsspec and its
filesystem package are installed (see serving/requirements-batch.txt). The output (and errors file)
appear only when complete: written to a temporary file first, then moved or uploaded.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import re
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import numpy as np
from pydantic import ValidationError

from serving.errors import InvalidInput
from serving.exit_codes import Batch
from serving.protocols import columns as typed
from serving.runtime import ColumnRows, ModelLoadError, ModelRefused, ModelRuntime, Rows
from serving.settings import describe_settings_error, load_settings


class BatchError(Exception):
    """A problem with the input or the options; the message says which row or option."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: unwind like Ctrl-C, so no temporary file is left behind."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# Fields longer than csv's default 128 KiB are kept (a text column may be long); a field or a line
# beyond these bounds is a bad row rather than a job killed by csv.Error. A line is bounded because
# splitting it costs memory by field: 50 million commas took 1.1 GB (measured).
FIELD_LIMIT = 4 * 1024 * 1024
LINE_LIMIT = 4 * 1024 * 1024
MAX_COLUMNS = 65_536
# Undecodable input bytes, kept through `surrogateescape` so the errors file holds them unchanged.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    bad: int = 0


# Files: local paths directly, URLs through fsspec.


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


class CountingReader(io.RawIOBase):
    """Passes a binary stream through, telling `progress` how many bytes went by (for percent and ETA)."""

    def __init__(self, raw: IO[bytes], progress: Any) -> None:
        self.raw = raw
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.progress.update(len(data))
        return len(data)


@contextlib.contextmanager
def open_binary(location: str) -> Iterator[tuple[IO[bytes], int | None]]:
    """The input as bytes, and its size when it can be known cheaply (local files, most object stores)."""
    if _is_url(location):
        try:
            import fsspec
        except ImportError:
            hint = "pip install --require-hashes -r serving/requirements-batch.txt"
            raise BatchError(f"{location}: URLs need fsspec ({hint})") from None
        try:
            fs, path = fsspec.core.url_to_fs(location)
            size = fs.size(path)
            with fs.open(path, "rb") as handle:
                yield handle, size
        except FileNotFoundError:
            raise BatchError(f"input not found: {location}") from None
        return
    path = location.removeprefix("file://")
    if not os.path.isfile(path):
        raise BatchError(f"input not found: {path}")
    with open(path, "rb") as handle:
        yield handle, os.path.getsize(path)


def text_reader(raw: IO[bytes], progress: Any) -> IO[str]:
    """UTF-8 text (a BOM is dropped); bytes that are not UTF-8 survive as surrogates, to be set aside."""
    buffered = io.BufferedReader(CountingReader(raw, progress), buffer_size=1024 * 1024)
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="surrogateescape", newline="")


class AtomicOutput:
    """A temporary file that becomes `location` only on commit(); discarded otherwise."""

    def __init__(self, location: str) -> None:
        self.location = location
        local_path = None if _is_url(location) else os.path.abspath(location.removeprefix("file://"))
        local_dir = os.path.dirname(local_path) if local_path else None
        if local_path is not None and os.path.isdir(local_path):
            raise BatchError(
                f"{location} is a directory; give a file name, e.g. {os.path.join(location, 'scored.csv')}"
            )
        if local_dir is not None and not os.path.isdir(local_dir):
            raise BatchError(f"output directory does not exist: {local_dir}")
        handle, self.temp_path = tempfile.mkstemp(prefix=".mlserve-", suffix=".partial", dir=local_dir)
        os.close(handle)

    def commit(self) -> None:
        if _is_url(self.location):
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.location)
            fs.put_file(self.temp_path, path)
            os.unlink(self.temp_path)
        else:
            # mkstemp makes the file private (0600); the result gets the mode any new file would get.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.temp_path, 0o666 & ~umask)
            os.replace(self.temp_path, self.location.removeprefix("file://"))

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)


# Rows -> features


class Scorer:
    def __init__(self, runtime: ModelRuntime, method: str) -> None:
        self.runtime = runtime
        self.method = method
        if method == "predict_proba" and not runtime.is_classifier:
            raise BatchError(f"--method predict_proba: model '{runtime.name}' is not a classifier")
        classes = runtime.classes or list(range(runtime.probability_width))
        self.output_columns = ["prediction"] + (
            [f"probability_{c}" for c in classes] if method == "predict_proba" else []
        )

    def feature_columns(self, header: list[str]) -> list[int]:
        if len(header) > MAX_COLUMNS:
            raise BatchError(f"input has {len(header)} columns, more than {MAX_COLUMNS}; keep the model's features")
        duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
        if duplicates:
            raise BatchError(f"input header names {', '.join(duplicates)} more than once; rename the columns")
        clashes = [name for name in self.output_columns if name in header]
        if clashes:
            raise BatchError(
                f"input already has column(s) {', '.join(clashes)}, which the output adds; rename or drop them"
            )
        features = self.runtime.feature_names
        if features is None:
            if len(header) < self.runtime.n_features:
                raise BatchError(f"input has {len(header)} columns; the model needs {self.runtime.n_features}")
            return list(range(self.runtime.n_features))
        position = {name: i for i, name in enumerate(header)}
        missing = [f for f in features if f not in position]
        if missing:
            raise BatchError(f"input header lacks the model's features: {', '.join(missing)}")
        return [position[f] for f in features]

    def typed(self, rows: list[list[Any]], indices: list[int], cells: bool) -> ColumnRows:
        """Rows of a typed-column model (CSV cells as text, or Parquet values) -> its columns; raises
        InvalidInput naming the column and the type it takes."""
        model_columns = self.runtime.columns or ()
        if cells:
            values = [
                [typed.csv_cell(c, row[i], r, "row") for r, row in enumerate(rows)]
                for c, i in zip(model_columns, indices, strict=True)
            ]
        else:
            values = [[row[i] for row in rows] for i in indices]
        return typed.from_columns(self.runtime, values, "row")

    def typed_problems(self, rows: list[list[Any]], indices: list[int], cells: bool) -> list[str | None]:
        """Per row, what is wrong with it for a typed-column model (None: nothing)."""
        try:
            self.typed(rows, indices, cells)
            return [None] * len(rows)
        except InvalidInput:
            pass
        problems: list[str | None] = []
        for row in rows:
            try:
                self.typed([row], indices, cells)
                problems.append(None)
            except InvalidInput as error:
                problems.append(str(error).removeprefix("row[0]: "))
        return problems

    def score(self, matrix: Rows) -> list[list[Any]]:
        if not isinstance(matrix, ColumnRows):
            matrix = matrix.astype(self.runtime.input_dtype)
        try:
            prediction = self.runtime.predict(matrix, probabilities=self.method == "predict_proba")
        except ModelRefused as error:
            raise BatchError(str(error)) from None
        columns: list[Any] = [prediction.labels.tolist()]
        if prediction.probabilities is not None:
            columns.extend(prediction.probabilities.T.tolist())
        return [list(values) for values in zip(*columns, strict=True)]


def _all_numbers(cells: list[str]) -> bool:
    try:
        [float(cell) for cell in cells]
    except ValueError:
        return False
    return bool(cells)


def _row_problem(row: list[str], indices: list[int], header: list[str]) -> str | None:
    if any(_UNDECODABLE.search(cell) for cell in row):
        return "not UTF-8 text"
    if len(row) != len(header):
        return f"expected {len(header)} values, got {len(row)}"
    for i in indices:
        try:
            value = float(row[i])
        except ValueError:
            return f"column '{header[i]}': {row[i]!r:.40} is not a number"
        if not np.isfinite(np.float32(value)):
            return f"column '{header[i]}': {row[i]!r:.40} is not a finite float32 number"
    return None


class BoundedLines:
    """The input's lines for csv.reader, each at most `limit` characters: the rest of a longer one is
    read past (never held) and the line reported as csv.Error, which makes it a bad row."""

    def __init__(self, source: IO[str], limit: int) -> None:
        self.source = source
        self.limit = limit

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.source.readline(self.limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self.limit and line[-1] not in "\r\n":
            while line and line[-1] not in "\r\n":
                line = self.source.readline(self.limit)
            raise csv.Error(f"line longer than {self.limit} characters")
        return line


def score_csv(
    source: IO[str], out: IO[str], errors: IO[str] | None, scorer: Scorer, chunk_rows: int, progress: Any
) -> Summary:
    csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(BoundedLines(source, LINE_LIMIT))
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise BatchError(f"header (line 1): {error}") from None
    if header is None:
        raise BatchError("input is empty: expected a header row")
    if any(_UNDECODABLE.search(name) for name in header):
        raise BatchError("header (line 1): not UTF-8 text; save the file as UTF-8")
    first_row: list[str] | None = None
    if _all_numbers(header):
        # No header: the first line is data. Never take a row of numbers for column names (a row
        # would be lost without a word); name the columns instead.
        if scorer.runtime.feature_names is not None:
            raise BatchError(
                "line 1 is numbers, not a header: add a header row with the model's feature names "
                f"({', '.join(scorer.runtime.feature_names)})"
            )
        first_row, header = header, [f"column_{i + 1}" for i in range(len(header))]
    indices = scorer.feature_columns(header)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header + scorer.output_columns)
    error_writer = csv.writer(errors, lineterminator="\n") if errors is not None else None
    if error_writer:
        error_writer.writerow(["row", "line", "error", *header])
    summary = Summary()
    chunk: list[tuple[int, int, list[str]]] = []

    def set_aside(number: int, line: int, problem: str, row: list[str]) -> None:
        """A bad row: into the errors file with --on-error skip, else the run stops naming it."""
        if error_writer is None:
            raise BatchError(f"row {number} (line {line}): {problem}; use --on-error skip to set it aside")
        error_writer.writerow([number, line, problem, *row])
        summary.bad += 1

    def flush_typed() -> None:
        good: list[list[str]] = []
        problems = scorer.typed_problems([row for *_, row in chunk], indices, cells=True)
        for (number, line, row), problem in zip(chunk, problems, strict=True):
            if problem is None and any(_UNDECODABLE.search(cell) for cell in row):
                problem = "not UTF-8 text"
            if problem is None and len(row) != len(header):
                problem = f"expected {len(header)} values, got {len(row)}"
            if problem is None:
                good.append(row)
                continue
            set_aside(number, line, problem, row)
        if good:
            scored = scorer.score(scorer.typed(good, indices, cells=True))
            writer.writerows(row + s for row, s in zip(good, scored, strict=True))
        summary.scored += len(good)
        progress.set_postfix_str(f"{summary.rows} rows", refresh=False)
        chunk.clear()

    def flush() -> None:
        if scorer.runtime.columns is not None:
            flush_typed()
            return
        good: list[list[str]] = []
        finite: np.ndarray | None = None  # None: check each row
        try:
            matrix = np.array([[row[i] for i in indices] for _, _, row in chunk], dtype=np.float64)
            if all(len(r) == len(header) for *_, r in chunk):
                finite = np.asarray(np.isfinite(matrix.astype(np.float32)).all(axis=1))
            if finite is not None and finite.all() and any(_UNDECODABLE.search(c) for *_, r in chunk for c in r):
                finite = None
        except (ValueError, IndexError):
            finite = None
        if finite is not None and finite.all():
            good = [row for *_, row in chunk]
        else:
            for number, line, row in chunk:
                problem = _row_problem(row, indices, header)
                if problem is None:
                    good.append(row)
                    continue
                set_aside(number, line, problem, row)
            matrix = np.array([[row[i] for i in indices] for row in good], dtype=np.float64)
        if good:
            writer.writerows(row + scored for row, scored in zip(good, scorer.score(matrix), strict=True))
        summary.scored += len(good)
        progress.set_postfix_str(f"{summary.rows} rows", refresh=False)
        chunk.clear()

    pending = [first_row] if first_row is not None else []
    while True:
        try:
            row = pending.pop() if pending else next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            # The csv module gives up on this line (a field over FIELD_LIMIT); note it and go on.
            summary.rows += 1
            problem = f"{error}; the line could not be read"
            if error_writer is None:
                raise BatchError(f"row {summary.rows} (line {reader.line_num}): {problem}") from None
            error_writer.writerow([summary.rows, reader.line_num, problem])
            summary.bad += 1
            continue
        if not row:
            continue
        summary.rows += 1
        chunk.append((summary.rows, reader.line_num, row))
        if len(chunk) >= chunk_rows:
            flush()
    if chunk:
        flush()
    return summary


def score_parquet(
    source: IO[bytes], out_path: str, errors: IO[str] | None, scorer: Scorer, chunk_rows: int, progress: Any
) -> Summary:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BatchError(
            "Parquet needs pyarrow (pip install --require-hashes -r serving/requirements-batch.txt)"
        ) from None
    parquet = open_parquet(source)
    progress.reset(total=parquet.metadata.num_rows)
    progress.unit = " rows"
    header = parquet.schema_arrow.names
    indices = scorer.feature_columns(header)
    error_writer = csv.writer(errors, lineterminator="\n") if errors is not None else None
    if error_writer:
        error_writer.writerow(["row", "error", *header])
    summary = Summary()
    writer = None
    try:
        for batch in _batches(parquet, chunk_rows, summary):
            if scorer.runtime.columns is not None:
                matrix, ok = _typed_batch(scorer, batch, indices, header, summary.rows, error_writer)
                summary.bad += int((~ok).sum())
                batch = batch.filter(pa.array(ok)) if not ok.all() else batch
            else:
                matrix, batch, ok = _matrix_batch(pa, batch, indices, header, summary, error_writer)
            summary.rows += len(ok)
            if batch.num_rows:
                scored = scorer.score(matrix)
                for position, name in enumerate(scorer.output_columns):
                    batch = batch.append_column(name, pa.array([r[position] for r in scored]))
                if writer is None:
                    writer = pq.ParquetWriter(out_path, batch.schema)
                writer.write_batch(batch)
                summary.scored += batch.num_rows
            progress.update(len(ok))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise BatchError("no rows were scored: the input is empty or every row is bad")
    return summary


def _typed_batch(
    scorer: Scorer, batch: Any, indices: list[int], header: list[str], before: int, error_writer: Any
) -> tuple[Rows, np.ndarray]:
    """A typed-column model's rows of a Parquet batch (values as Arrow gives them), and which are good."""
    rows = [list(values) for values in zip(*(batch.column(i).to_pylist() for i in range(len(header))), strict=True)]
    problems = scorer.typed_problems(rows, indices, cells=False)
    ok = np.array([p is None for p in problems], dtype=bool)
    for offset, problem in enumerate(problems):
        if problem is not None:
            if error_writer is None:
                raise BatchError(f"row {before + offset + 1}: {problem}; use --on-error skip to set it aside")
            error_writer.writerow([before + offset + 1, problem, *rows[offset]])
    good = [row for row, keep in zip(rows, ok, strict=True) if keep]
    return (scorer.typed(good, indices, cells=False) if good else ColumnRows({}, 0)), ok


def _matrix_batch(
    pa: Any, batch: Any, indices: list[int], header: list[str], summary: Summary, error_writer: Any
) -> tuple[np.ndarray, Any, np.ndarray]:
    """A single-matrix model's rows of a Parquet batch as float64, bad rows set aside."""
    try:
        matrix = np.column_stack([batch.column(i).to_numpy(zero_copy_only=False).astype(np.float64) for i in indices])
    except (ValueError, TypeError, pa.ArrowInvalid) as error:
        raise BatchError(f"rows {summary.rows + 1}-{summary.rows + batch.num_rows}: {error}") from None
    ok = np.asarray(np.isfinite(matrix.astype(np.float32)).all(axis=1))
    if not ok.all():
        for offset in np.flatnonzero(~ok):
            number = summary.rows + int(offset) + 1
            column = header[indices[int(np.flatnonzero(~np.isfinite(matrix[offset]))[0])]]
            problem = f"column '{column}': missing, NaN or not a finite float32 number"
            if error_writer is None:
                raise BatchError(f"row {number}: {problem}; use --on-error skip to set it aside")
            error_writer.writerow([number, problem, *batch.slice(int(offset), 1).to_pylist()[0].values()])
        summary.bad += int((~ok).sum())
        batch = batch.filter(pa.array(ok))
        matrix = matrix[ok]
    return matrix, batch, ok


def open_parquet(source: Any) -> Any:
    """pq.ParquetFile, with a one-line error for a file that is not Parquet, truncated or damaged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as error:
        raise BatchError(f"input is not a readable Parquet file ({error}); check the file and --format") from None


def _batches(parquet: Any, chunk_rows: int, summary: Summary) -> Iterator[Any]:
    """The file's record batches; damage found while reading them ends the job with the rows it reached."""
    import pyarrow as pa

    batches = parquet.iter_batches(batch_size=chunk_rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise BatchError(
                f"input Parquet is damaged after row {summary.rows} ({error}); nothing was written"
            ) from None
        yield batch


def convert(source: str, kind: str, destination: str, predicted: list[str]) -> None:
    """CSV <-> Parquet, streamed batch by batch. CSV input columns stay text in Parquet (as read)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        raise BatchError(
            "Parquet needs pyarrow (pip install --require-hashes -r serving/requirements-batch.txt)"
        ) from None
    if kind == "csv":
        with open(source, "rb") as handle:
            names = next(csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline="")))
        types = {name: pa.string() for name in names if name not in predicted}
        reader = pa_csv.open_csv(source, convert_options=pa_csv.ConvertOptions(column_types=types))
        with pq.ParquetWriter(destination, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
        return
    parquet = open_parquet(source)
    with pa_csv.CSVWriter(destination, parquet.schema_arrow) as writer:
        for batch in parquet.iter_batches():
            writer.write_batch(batch)


def errors_location(output: str) -> str:
    """`out.csv` -> `out.errors.csv`, for paths and URLs alike (pathlib would fold `s3://` into `s3:/`)."""
    stem, dot, suffix = output.rpartition(".")
    return (stem if dot and "/" not in suffix else output) + ".errors.csv"


def _format(location: str, requested: str) -> str:
    if requested != "auto":
        return requested
    return "parquet" if location.lower().endswith((".parquet", ".pq")) else "csv"


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def run_batch(args: argparse.Namespace) -> int:
    for handled in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(handled, _raise_interrupted)
    try:
        summary = _run(args)
    except (BatchError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return Batch.FAILED
    except (Interrupted, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else int(signal.SIGINT)
        name = signal.Signals(signum).name
        print(f"error: stopped by {name}; no output written (run again to score)", file=sys.stderr)
        return Batch.STOPPED + signum
    except ValidationError as error:
        print(f"error: {describe_settings_error(error)}", file=sys.stderr)
        return Batch.SETTINGS
    print(
        f"scored {summary.scored} of {summary.rows} rows into {args.output}"
        + (f"; {summary.bad} bad rows in {args.errors}" if summary.bad else ""),
        file=sys.stderr,
    )
    return Batch.SCORED


def _run(args: argparse.Namespace) -> Summary:
    from tqdm import tqdm

    if args.chunk_rows < 1:
        raise BatchError("--chunk-rows must be at least 1")
    settings = load_settings(**({"model": Path(args.model)} if args.model else {}))
    runtime = ModelRuntime(settings.model, intra_op_threads=settings.intra_op_threads)
    scorer = Scorer(runtime, args.method)
    if args.on_error == "skip" and not args.errors:
        args.errors = errors_location(args.output)
    kind = _format(args.input, args.format)
    out_kind = _format(args.output, args.format)
    output = AtomicOutput(args.output)
    errors = AtomicOutput(args.errors) if args.on_error == "skip" else None
    # Scored in the input's format; converted when the output's name asks for the other one.
    scratch = AtomicOutput(args.output) if out_kind != kind else output
    try:
        with contextlib.ExitStack() as stack:
            raw, size = stack.enter_context(open_binary(args.input))
            # CSV: progress by bytes read, so percent and ETA are known whenever the size is.
            progress = stack.enter_context(
                tqdm(
                    total=size,
                    unit="B",
                    unit_scale=True,
                    disable=not args.progress if args.progress is not None else None,
                    file=sys.stderr,
                )
            )

            # Undecodable bytes of bad rows are written back as they came (surrogateescape).
            def text_file(path: str) -> TextIO:
                return open(path, "w", newline="", encoding="utf-8", errors="surrogateescape")

            error_file = stack.enter_context(text_file(errors.temp_path)) if errors else None
            if kind == "parquet":
                progress.unit_scale = False
                summary = score_parquet(raw, scratch.temp_path, error_file, scorer, args.chunk_rows, progress)
            else:
                source = text_reader(raw, progress)
                out = stack.enter_context(text_file(scratch.temp_path))
                summary = score_csv(source, out, error_file, scorer, args.chunk_rows, progress)
        if scratch is not output:
            convert(scratch.temp_path, kind, output.temp_path, scorer.output_columns)
            scratch.discard()
    except BaseException:
        output.discard()
        scratch.discard()
        if errors:
            errors.discard()
        raise
    output.commit()
    if errors:
        errors.commit()
    return summary
