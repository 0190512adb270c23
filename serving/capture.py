"""Payload capture: a sample of scored requests, written to blob storage off the hot path.

On the request path a sampled request costs one random number, a tuple and a list append under an
uncontended lock; nothing is encoded there. A background thread wakes every `batch_seconds` (or when
`batch_records` are waiting), encodes the records (serving/capture_format.py) and uploads them, one
blob per batch and hour. Never at the cost of serving: records waiting or failing to upload are held
up to `max_pending_bytes`; beyond that new records are dropped and counted (metric
`mlserve_capture_records{outcome="dropped"}`, and a log line at the first drop, then one a minute at
most). A failed upload (store down, or 403 while a new role assignment propagates, which can take
minutes) is retried with a backoff until it succeeds, or until shutdown's deadline, when what is
left is counted as dropped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from serving.capture_format import RecordFormat, blob_name, column_names
from serving.capture_store import BlobStore, Store
from serving.runtime import ColumnRows, Rows

if TYPE_CHECKING:
    from serving.runtime import ModelRuntime
    from serving.settings import Settings

log = logging.getLogger("serving")

RECORD_OVERHEAD_BYTES = 400  # the tuple, the array header, the lists: what a record holds besides its data
LOG_EVERY_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0

Outputs = bytes | Callable[[], bytes]  # the answer's `{"predictions": ...}` JSON, or how to make it


class Sampled(NamedTuple):
    request_id: str
    wall_time: float
    rows: Rows
    outputs: Outputs
    size: int


class Batch(NamedTuple):
    name: str
    data: bytes
    records: int


class Capture:
    def __init__(
        self,
        store: Store,
        record_format: RecordFormat,
        *,
        percent: float,
        prefix: str,
        endpoint: str,
        batch_records: int,
        batch_seconds: float,
        max_pending_bytes: int,
    ) -> None:
        self.store = store
        self.format = record_format
        self.share = percent / 100.0
        self.prefix = prefix
        self.endpoint = endpoint
        self.batch_records = batch_records
        self.batch_seconds = batch_seconds
        self.max_pending_bytes = max_pending_bytes
        self._pending: list[Sampled] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_by: float | None = None  # monotonic deadline, once closing
        # Each counter has one writer (the event loop or the uploader), so no lock is needed for them.
        self.added_bytes = 0  # event loop
        self.released_bytes = 0  # uploader
        self.dropped_full = 0  # event loop
        self.dropped_unsent = 0  # uploader, at shutdown
        self.uploaded = 0  # uploader
        self.last_failure: str | None = None  # uploader: why the last upload failed, None once one succeeds
        self._next_drop_log = 0.0  # event loop
        self._thread = threading.Thread(target=self._run, name="mlserve-capture", daemon=True)
        self._thread.start()

    # The request path (event loop).

    def offer(self, request_id: str, rows: Rows, outputs: Outputs) -> None:
        """Maybe keep this scored request: a `share` of them, while memory allows."""
        if self.share < 1.0 and random.random() >= self.share:  # noqa: S311 - sampling, not secrecy
            return
        size = _size(rows) + (len(outputs) if isinstance(outputs, bytes) else 256) + RECORD_OVERHEAD_BYTES
        if self.added_bytes - self.released_bytes + size > self.max_pending_bytes or self._stop_by is not None:
            self.dropped_full += 1
            self._tell_drops()
            return
        self.added_bytes += size
        with self._lock:
            pending = self._pending
            pending.append(Sampled(request_id, time.time(), rows, outputs, size))
            full = len(pending) >= self.batch_records
        if full:
            self._wake.set()

    def _tell_drops(self) -> None:
        """A log line when records are dropped: the first at once, then one a minute at most."""
        now = time.monotonic()
        if now < self._next_drop_log:
            return
        self._next_drop_log = now + LOG_EVERY_SECONDS
        log.warning(
            "capture: dropping records, %d so far: %d bytes wait for the store, the most allowed (%s)",
            self.dropped,
            self.pending_bytes,
            self.last_failure or "uploads are slower than requests arrive",
        )

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_unsent

    @property
    def pending_bytes(self) -> int:
        return self.added_bytes - self.released_bytes

    def close(self, deadline: float) -> None:
        """Upload what is pending until `deadline` (monotonic); count what is left as dropped."""
        self._stop_by = deadline
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        if self._thread.is_alive():
            log.warning("capture: the store did not answer before the drain deadline; pending records are lost")

    # The uploader (its own thread).

    def _take(self) -> list[Sampled]:
        with self._lock:
            taken, self._pending = self._pending, []
        self._wake.clear()
        return taken

    def _encode(self, records: list[Sampled]) -> list[Batch]:
        """Records into blobs: at most `batch_records` each, one hour's records per blob (the path has the hour)."""
        by_hour: dict[int, list[bytes]] = {}
        first_time: dict[int, float] = {}
        line = self.format.line
        for request_id, wall_time, rows, outputs, _ in records:
            hour = int(wall_time // 3600)
            body = outputs if isinstance(outputs, bytes) else outputs()
            by_hour.setdefault(hour, []).append(line(request_id, wall_time, rows, body))
            first_time.setdefault(hour, wall_time)
        batches = []
        for hour, lines in by_hour.items():
            for start in range(0, len(lines), self.batch_records):
                chunk = lines[start : start + self.batch_records]
                name = blob_name(self.prefix, self.endpoint, self.format.model_version, first_time[hour])
                batches.append(Batch(name, b"".join(chunk), len(chunk)))
        return batches

    def _run(self) -> None:
        unsent: list[tuple[Batch, int]] = []  # a batch and the bytes it holds against the bound
        backoff = 0.0
        while True:
            stopping = self._stop_by is not None
            if not stopping:
                self._wake.wait(max(self.batch_seconds, backoff))
            taken = self._take()
            if taken:
                size = sum(record.size for record in taken)
                try:
                    batches = self._encode(taken)
                except Exception:
                    log.exception("capture: could not encode %d record(s); dropped", len(taken))
                    self.dropped_unsent += len(taken)
                    self.released_bytes += size
                    batches = []
                # Memory is released per batch as it is sent: charge each its share of the records' size,
                # the last one the remainder, so that every byte held is released exactly once.
                charged = 0
                for position, batch in enumerate(batches):
                    share = size - charged if position == len(batches) - 1 else size * batch.records // len(taken)
                    charged += share
                    unsent.append((batch, share))
            unsent, failure = self._send(unsent)
            self.last_failure = failure
            if failure is None:
                if backoff:
                    log.info("capture: uploads work again")
                backoff = 0.0
            else:
                if not backoff:
                    log.warning("capture: upload failed, retrying with a backoff: %s", failure)
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
            now = time.monotonic()
            if stopping:
                if not unsent and not self._pending:
                    return
                if now >= (self._stop_by or now):
                    lost = sum(batch.records for batch, _ in unsent)
                    self.dropped_unsent += lost
                    log.warning("capture: %d record(s) not uploaded by the drain deadline (%s)", lost, failure)
                    return
                if failure is not None:
                    time.sleep(min(backoff, max(0.0, (self._stop_by or now) - now)))

    def _send(self, unsent: list[tuple[Batch, int]]) -> tuple[list[tuple[Batch, int]], str | None]:
        """Upload in order; on the first failure keep it and the rest for the next round."""
        for position, (batch, size) in enumerate(unsent):
            try:
                self.store.upload(batch.name, batch.data)
            except Exception as error:  # any failure of the store: network, auth (403 while a role propagates)
                first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                return unsent[position:], f"{type(error).__name__}: {first_line}"[:300]
            self.uploaded += batch.records
            self.released_bytes += size
        return [], None


class CaptureSettingsError(Exception):
    """The capture settings do not fit the model (e.g. an excluded column it does not have)."""


def record_format(settings: Settings, runtime: ModelRuntime) -> RecordFormat:
    """How this model's requests are recorded; checked at start-up, before any worker serves."""
    try:
        return RecordFormat(
            column_names(runtime.feature_names, runtime.n_features),
            settings.capture_exclude,
            runtime.name,
            runtime.version,
            [c.input for c in runtime.columns] if runtime.columns is not None else None,
        )
    except ValueError as error:
        raise CaptureSettingsError(str(error)) from None


def start_capture(settings: Settings, runtime: ModelRuntime, store: Store | None = None) -> Capture | None:
    """The capture the settings ask for, uploading from its own thread; None when it is off."""
    if settings.capture_percent <= 0:
        return None
    records = record_format(settings, runtime)
    connection = settings.capture_connection_string
    if store is None:
        blobs = BlobStore(
            settings.capture_container or "",  # the settings' validator requires one when capture is on
            settings.capture_account_url,
            connection.get_secret_value() if connection is not None else None,
        )
        log.info(
            "capture: %g%% of scored requests to %s/%s",
            settings.capture_percent,
            blobs.location,
            settings.capture_prefix,
        )
        store = blobs
    return Capture(
        store,
        records,
        percent=settings.capture_percent,
        prefix=settings.capture_prefix,
        endpoint=settings.capture_endpoint or runtime.name,
        batch_records=settings.capture_batch_records,
        batch_seconds=settings.capture_batch_seconds,
        max_pending_bytes=settings.capture_max_pending_bytes,
    )


def _size(rows: Rows) -> int:
    """About what a record holds: text columns count their characters, not only their pointers."""
    if isinstance(rows, ColumnRows):
        arrays = rows.feed.values()
        return sum(a.nbytes + (sum(len(str(v)) for v in a.flat) if a.dtype == object else 0) for a in arrays)
    return int(rows.nbytes)
