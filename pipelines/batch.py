"""The whole pipeline over one batch of raw events: symbolicate → scrub → fingerprint → rows.

Symbolication comes first so that what it adds (source lines from the map, which can hold a
hard-coded secret) is scrubbed with the rest of the event.

Each event is processed on its own, so any split of a batch into parts gives, concatenated,
the same rows as the whole: orchestration runs the parts in parallel processes, and
`process_isolating` halves a batch that failed to find the events that fail on their own
(a "poison" event: a bug meeting a shape nobody foresaw), so that they are set aside with
their error while the rest of the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import polars as pl

from pipelines.fingerprinting import fingerprint_events
from pipelines.processed import event_rows, feedback_rows, transaction_rows
from pipelines.scrubbing import ScrubConfig, scrub_payloads
from pipelines.symbolication import SourceMapCache, SourceMapProvider, symbolicate_payloads

log = logging.getLogger(__name__)

# What is kept of an event set aside: who it belongs to, when it came, and why it failed.
FAILED_SCHEMA: dict[str, pl.DataType] = {
    "organization_id": pl.UInt64(),
    "project_id": pl.UInt64(),
    "event_id": pl.Utf8(),
    "item_type": pl.Utf8(),
    "received_at": pl.Datetime("ms", "UTC"),
    "landed_at": pl.Datetime("us", "UTC"),  # null when the raw frame has no landing time
    "stage": pl.Utf8(),  # symbolication, scrubbing, fingerprinting, rows
    "error_type": pl.Utf8(),
    "error_message": pl.Utf8(),
}
MAX_ERROR_CHARS = 500


def no_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILED_SCHEMA)


@dataclass(frozen=True)
class ProcessedRows:
    """Rows for the processed tables; events still need their issue ids. `failed`: the
    events set aside by `process_isolating` (FAILED_SCHEMA), which have no rows here."""

    events: pl.DataFrame
    transactions: pl.DataFrame
    feedback: pl.DataFrame
    failed: pl.DataFrame = field(default_factory=no_failures)

    @staticmethod
    def concat(parts: Sequence[ProcessedRows]) -> ProcessedRows:
        return ProcessedRows(*(pl.concat([getattr(p, name) for p in parts], how="vertical")
                               for name in ("events", "transactions", "feedback", "failed")))


class StorageUnavailable(Exception):  # noqa: N818 - says what happened, as BlobNotFound does
    """Storage the pipeline reads failed (the source-map store: PostgreSQL, the blob store,
    S3, a timeout). No event is to blame: the batch fails and is retried, and no event is
    set aside for it. `error` is what the provider raised (symbolication re-raises past its
    per-event safety net `from None`, so it is kept here rather than as `__cause__`)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"source maps unavailable: {error!r}"[:MAX_ERROR_CHARS])
        self.error = error


def process_raw_events(
    raw: pl.DataFrame,
    scrub_configs: Mapping[int, ScrubConfig],
    source_maps: SourceMapProvider,
    cache: SourceMapCache | None = None,
) -> ProcessedRows:
    """Rows for `events`, `transactions` and `feedback` from a frame of raw events. Raises
    what any stage raises: the whole batch fails (see `process_isolating`)."""
    return _run_stages(raw, scrub_configs, source_maps, cache, [""])


def _run_stages(
    raw: pl.DataFrame,
    scrub_configs: Mapping[int, ScrubConfig],
    source_maps: SourceMapProvider,
    cache: SourceMapCache | None,
    stage: list[str],
) -> ProcessedRows:
    """The stages in order; `stage[0]` names the one running, for the failure's record."""
    stage[0] = "symbolication"
    symbolicated = symbolicate_payloads(raw, source_maps, cache)
    stage[0] = "scrubbing"
    scrubbed = scrub_payloads(symbolicated, scrub_configs)
    stage[0] = "fingerprinting"
    fingerprinted = fingerprint_events(scrubbed)
    stage[0] = "rows"
    return ProcessedRows(event_rows(fingerprinted), transaction_rows(fingerprinted),
                         feedback_rows(fingerprinted))


class _StorageErrors:
    """The provider with its errors as StorageUnavailable. The provider raises only when
    storage failed (see SourceMapProvider): telling those apart from an event's fault here,
    at the one place the pipeline reaches storage, means a new provider cannot get it wrong."""

    def __init__(self, provider: SourceMapProvider) -> None:
        self.provider = provider

    def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
        return _asking_storage(self.provider.by_debug_id, organization_id, debug_id)

    def by_release(
        self, organization_id: int, release: str, dist: str | None, url: str
    ) -> bytes | None:
        return _asking_storage(self.provider.by_release, organization_id, release, dist, url)


def _asking_storage(ask: Callable[..., bytes | None], *args: object) -> bytes | None:
    try:
        return ask(*args)
    except StorageUnavailable:
        raise
    except Exception as error:
        raise StorageUnavailable(error) from error


# Never an event's fault: the process or the storage is in trouble, and the batch must be
# retried. Everything else an event's processing raises is taken as the event's fault.
_NOT_THE_EVENTS_FAULT = (StorageUnavailable, MemoryError)
# A panic in Polars' Rust code derives from BaseException, not Exception, but is as much an
# event's fault as a Python error in our own code.
_EVENTS_FAULT = (Exception, pl.exceptions.PanicException)


def process_isolating(
    raw: pl.DataFrame,
    scrub_configs: Mapping[int, ScrubConfig],
    source_maps: SourceMapProvider,
    cache: SourceMapCache | None = None,
) -> ProcessedRows:
    """`process_raw_events`, except that an event that fails on its own is set aside: its
    identity and error are in `failed` (FAILED_SCHEMA), it has no rows, and every other
    event's rows are what processing it alone gives.

    The batch runs once as it is; only when it raises is it halved, each half run, and a
    half that fails halved again, down to single events. Nothing more is run when nothing
    fails; k failing events cost about 2·k·log2(n) runs of ever smaller parts. Storage
    failures (StorageUnavailable, wrapping whatever the provider raises) and MemoryError
    are raised, never blamed on an event: the batch is retried whole. So is the error of a
    batch of at least 2·SYSTEMIC_SAMPLE events whose sampled events all fail alone, the same
    way: that is a bug every event meets (a bad deploy), not poison, and setting every
    event aside would take ~70 ms an event (see _Isolation.systemic)."""
    return _Isolation(scrub_configs, _StorageErrors(source_maps), cache).run(raw, top=True)


# Events, evenly spread, run alone when a large batch fails: if all fail the same way as the
# batch, the failure is the code's, not its events'.
SYSTEMIC_SAMPLE = 16


class _Isolation:
    def __init__(self, scrub_configs: Mapping[int, ScrubConfig],
                 source_maps: SourceMapProvider, cache: SourceMapCache | None) -> None:
        self.scrub_configs = scrub_configs
        self.source_maps = source_maps
        self.cache = cache
        self.logged: set[tuple[str, str]] = set()  # one traceback per kind of failure
        self._no_rows: ProcessedRows | None = None

    def _stages(self, raw: pl.DataFrame, stage: list[str]) -> ProcessedRows:
        return _run_stages(raw, self.scrub_configs, self.source_maps, self.cache, stage)

    def _attempt(self, raw: pl.DataFrame) -> ProcessedRows | _Failure:
        """The batch's rows, or the stage that failed and its error."""
        stage = [""]
        try:
            return self._stages(raw, stage)
        except _NOT_THE_EVENTS_FAULT:
            raise
        except _EVENTS_FAULT as error:
            if raw.height == 0:
                raise  # no event to blame: the code fails on any batch
            return _Failure(stage[0], error)

    def systemic(self, raw: pl.DataFrame, failure: _Failure) -> bool:
        """Whether a sample of the batch's events, each run alone, all fail as it did."""
        step = raw.height // SYSTEMIC_SAMPLE
        for index in range(0, step * SYSTEMIC_SAMPLE, step):
            alone = self._attempt(raw.slice(index, 1))
            if not isinstance(alone, _Failure) or alone.kind != failure.kind:
                return False
        return True

    def run(self, raw: pl.DataFrame, top: bool = False) -> ProcessedRows:
        failure = self._attempt(raw)
        if not isinstance(failure, _Failure):
            return failure
        if top and raw.height >= 2 * SYSTEMIC_SAMPLE and self.systemic(raw, failure):
            raise failure.error
        if raw.height > 1:
            return ProcessedRows.concat([self.run(part) for part in split(raw, 2)])
        stage, error = failure
        log.warning("event %s of project %s set aside: %s failed (%s: %s)",
                    raw["event_id"][0], raw["project_id"][0], stage, type(error).__name__,
                    str(error)[:MAX_ERROR_CHARS],
                    exc_info=error if failure.kind not in self.logged else None)
        self.logged.add(failure.kind)
        if self._no_rows is None:  # the rows of no event, typed as any batch's: run once
            self._no_rows = self._stages(raw.clear(), [""])
        return ProcessedRows(self._no_rows.events, self._no_rows.transactions,
                             self._no_rows.feedback, _failed(raw, stage, error))


class _Failure(NamedTuple):
    stage: str
    error: BaseException

    @property
    def kind(self) -> tuple[str, str]:
        return self.stage, type(self.error).__name__


def _failed(raw: pl.DataFrame, stage: str, error: BaseException) -> pl.DataFrame:
    """The failure's record for each of raw's events (one, or none)."""
    message = str(error).strip() or repr(error)
    columns = {
        name: (raw.get_column(name).cast(dtype) if name in raw.columns
               else pl.Series(name, [None] * raw.height, dtype))
        for name, dtype in FAILED_SCHEMA.items() if name not in _ERROR_COLUMNS
    }
    return pl.DataFrame(columns).with_columns(
        pl.lit(stage, pl.Utf8).alias("stage"),
        pl.lit(type(error).__name__, pl.Utf8).alias("error_type"),
        pl.lit(message[:MAX_ERROR_CHARS], pl.Utf8).alias("error_message"),
    ).select(list(FAILED_SCHEMA))


_ERROR_COLUMNS = ("stage", "error_type", "error_message")


def split(raw: pl.DataFrame, parts: int) -> list[pl.DataFrame]:
    """`parts` contiguous slices of about equal size, in order."""
    size = -(-raw.height // max(1, parts))
    return [raw.slice(offset, size) for offset in range(0, raw.height, size)] or [raw]
