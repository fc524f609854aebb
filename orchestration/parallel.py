"""Large batches run through the pipeline in several processes at once, one per core.

The pipeline is CPU-bound Python (the scrubber's walk, fingerprinting, row building), so one
process uses one core. A batch of at least MIN_ROWS_PER_WORKER rows per worker is split into
contiguous parts, each worker runs `process_isolating` on its part with its own database
connection, blob store and source-map cache, and the parts are concatenated in order: the
same rows as running the whole batch in this process. A poison event is set aside in the
worker that meets it, within its part, and its record comes back with the part's rows.
Smaller batches (the steady trickle) run in the caller's process, since handing a part over
costs a few milliseconds.

The workers are started on the first large batch (spawned: the runner has threads, so it
must not fork) and stopped after IDLE_SECONDS without one, so an idle stack does not carry
their memory.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing

import polars as pl
import pyarrow as pa

from core.blobs import blob_store_at
from core.db import make_engine
from orchestration.source_maps import StoredSourceMaps
from pipelines.batch import ProcessedRows, process_isolating, split
from pipelines.scrubbing import ScrubConfig
from pipelines.symbolication import SourceMapCache

log = logging.getLogger("pulsetrace.parallel")

# A part's events, transactions, feedback and failed (the events set aside).
PartRows = tuple[pa.Table, pa.Table, pa.Table, pa.Table]

MIN_ROWS_PER_WORKER = 2_000
CHUNK_ROWS = 10_000  # a window is handed over in chunks of this many rows, see run_in_chunks
IDLE_SECONDS = 120.0


def worker_count(configured: int) -> int:
    """PIPELINE_WORKERS, where 0 means one per core."""
    return configured if configured > 0 else (os.cpu_count() or 1)


class PipelinePool:
    def __init__(self, database_url: str, blob_url: str, s3_endpoint_url: str | None,
                 workers: int, chunk_rows: int = CHUNK_ROWS,
                 worker_setup: Callable[[], None] | None = None) -> None:
        """worker_setup: a module-level function each worker calls once started (the tests
        inject faults into the workers' pipeline with it)."""
        self.storage = (database_url, blob_url, s3_endpoint_url, worker_setup)
        self.workers = workers
        self.chunk_rows = chunk_rows
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._idle_timer: threading.Timer | None = None

    def parts_for(self, rows: int) -> int:
        """How many processes a batch of `rows` is worth (1: run it in the caller)."""
        return max(1, min(self.workers, rows // MIN_ROWS_PER_WORKER))

    def run(self, raw: pl.DataFrame, scrub_configs: Mapping[int, ScrubConfig]) -> ProcessedRows:
        """All of raw's rows at once."""
        with closing(self.run_in_chunks(raw, scrub_configs, raw.height)) as chunks:
            return ProcessedRows.concat(list(chunks))

    def run_in_chunks(
        self, raw: pl.DataFrame, scrub_configs: Mapping[int, ScrubConfig],
        chunk_rows: int | None = None,
    ) -> Generator[ProcessedRows, None, None]:
        """raw's rows chunk by chunk, in order. While the caller stores one chunk's rows (the
        issues in PostgreSQL, the rows in ClickHouse: one core's work at most), the workers
        already process the next, so the cores are not left idle meanwhile."""
        size = max(1, chunk_rows or self.chunk_rows)
        chunks = [raw.slice(start, size) for start in range(0, raw.height, size)] or [raw]
        configs = dict(scrub_configs)
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=self.storage)
            executor = self._executor

            def submit(chunk: pl.DataFrame) -> list[Future[PartRows]]:
                return [executor.submit(_process_part, part.to_arrow(), configs)
                        for part in split(chunk, self.parts_for(chunk.height))]

            following: list[Future[PartRows]] = []
            try:
                following = submit(chunks[0])
                for index in range(len(chunks)):
                    current = following
                    following = submit(chunks[index + 1]) if index + 1 < len(chunks) else []
                    yield ProcessedRows.concat([
                        ProcessedRows(*(_frame(table) for table in future.result()))
                        for future in current])
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start afresh next time; the batch
                # fails and is retried, as any failed batch is.
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
                raise
            finally:
                for future in following:  # the caller stopped early: drop what is queued
                    future.cancel()
                self._idle_timer = threading.Timer(IDLE_SECONDS, self.close)
                self._idle_timer.daemon = True
                self._idle_timer.start()

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                log.info("stopping %d idle pipeline workers", self.workers)
                self._executor.shutdown(wait=True)
                self._executor = None


# --- in the worker processes ----------------------------------------------------------------

_source_maps: StoredSourceMaps | None = None
_cache = SourceMapCache()


def _start_worker(database_url: str, blob_url: str, s3_endpoint_url: str | None,
                  setup: Callable[[], None] | None) -> None:
    global _source_maps
    _source_maps = StoredSourceMaps(make_engine(database_url, pool_size=1, max_overflow=1),
                                    blob_store_at(blob_url, s3_endpoint_url))
    if setup is not None:
        setup()


def _process_part(raw: pa.Table, scrub_configs: dict[int, ScrubConfig]) -> PartRows:
    """The part's raw events and its rows travel as Arrow tables, both ways. A Polars frame
    pickles its string columns with the whole buffers they were cut from (88 MB for the rows
    of 10k events, where Arrow takes 31 MB and a third of the time); and a part of raw events
    took Polars twice the CPU to pickle and unpickle that Arrow takes with the conversions."""
    assert _source_maps is not None, "worker not initialized"
    rows = process_isolating(_frame(raw), scrub_configs, _source_maps, _cache)
    return (rows.events.to_arrow(), rows.transactions.to_arrow(), rows.feedback.to_arrow(),
            rows.failed.to_arrow())


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
