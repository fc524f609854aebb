"""The whole pipeline over one batch of raw events: symbolicate → scrub → fingerprint → rows.

Symbolication comes first so that what it adds (source lines from the map, which can hold a
hard-coded secret) is scrubbed with the rest of the event.

Each event is processed on its own, so any split of a batch into parts gives, concatenated,
the same rows as the whole: orchestration runs the parts in parallel processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from pipelines.fingerprinting import fingerprint_events
from pipelines.processed import event_rows, feedback_rows, transaction_rows
from pipelines.scrubbing import ScrubConfig, scrub_payloads
from pipelines.symbolication import SourceMapCache, SourceMapProvider, symbolicate_payloads


@dataclass(frozen=True)
class ProcessedRows:
    """Rows for the processed tables; events still need their issue ids."""

    events: pl.DataFrame
    transactions: pl.DataFrame
    feedback: pl.DataFrame

    @staticmethod
    def concat(parts: Sequence[ProcessedRows]) -> ProcessedRows:
        return ProcessedRows(*(pl.concat([getattr(p, name) for p in parts], how="vertical")
                               for name in ("events", "transactions", "feedback")))


def process_raw_events(
    raw: pl.DataFrame,
    scrub_configs: Mapping[int, ScrubConfig],
    source_maps: SourceMapProvider,
    cache: SourceMapCache | None = None,
) -> ProcessedRows:
    """Rows for `events`, `transactions` and `feedback` from a frame of raw events."""
    symbolicated = symbolicate_payloads(raw, source_maps, cache)
    scrubbed = scrub_payloads(symbolicated, scrub_configs)
    fingerprinted = fingerprint_events(scrubbed)
    return ProcessedRows(event_rows(fingerprinted), transaction_rows(fingerprinted),
                         feedback_rows(fingerprinted))


def split(raw: pl.DataFrame, parts: int) -> list[pl.DataFrame]:
    """`parts` contiguous slices of about equal size, in order."""
    size = -(-raw.height // max(1, parts))
    return [raw.slice(offset, size) for offset in range(0, raw.height, size)] or [raw]
