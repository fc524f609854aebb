"""The processing assets: one micro-batch of landed raw events per run.

One multi-asset materializes the four processed datasets together, because they are written
in one transaction (see orchestration.processing): splitting them would lose exactly-once.
The window comes from the run's config; the runner (orchestration.runner) picks it.
"""

# No `from __future__ import annotations` here: Dagster reads the config and resource
# parameter annotations at definition time.
from collections.abc import Iterator
from datetime import datetime

import dagster as dg

from core.settings import get_settings
from orchestration.parallel import PipelinePool, worker_count
from orchestration.processing import Window, process_window
from orchestration.resources import BlobStoreResource, PostgresResource, WarehouseResource
from pipelines.symbolication import SourceMapCache

# Parsed source maps and the pipeline's worker processes survive between runs of the
# long-lived runner process.
_source_maps = SourceMapCache()
_pools: dict[tuple[str, str, str | None], PipelinePool] = {}


def _pool(postgres: PostgresResource, blobs: BlobStoreResource) -> PipelinePool | None:
    workers = worker_count(get_settings().pipeline_workers)
    if workers < 2:
        return None
    storage = (postgres.url, blobs.url, blobs.s3_endpoint_url)
    if storage not in _pools:
        _pools[storage] = PipelinePool(*storage, workers=workers)
    return _pools[storage]


class BatchConfig(dg.Config):
    after: str  # ISO landing times: the batch is after < landed_at <= upto
    upto: str


@dg.multi_asset(
    specs=[
        dg.AssetSpec("events", description="Processed, scrubbed error and message events "
                     "(ClickHouse `events`)", group_name="processing"),
        dg.AssetSpec("transactions", description="Performance transactions with Web Vitals "
                     "and spans (ClickHouse `transactions`)", group_name="processing"),
        dg.AssetSpec("feedback", description="User feedback (ClickHouse `feedback`)",
                     group_name="processing"),
        dg.AssetSpec("issues", description="Issues in PostgreSQL: new, seen again, regressed",
                     group_name="processing"),
    ],
    description="Scrub PII, symbolicate, fingerprint and group one window of raw_events.",
)
def processed_batch(
    context: dg.AssetExecutionContext,
    config: BatchConfig,
    warehouse: WarehouseResource,
    postgres: PostgresResource,
    blobs: BlobStoreResource,
) -> Iterator[dg.MaterializeResult]:
    window = Window(datetime.fromisoformat(config.after), datetime.fromisoformat(config.upto))
    result = process_window(warehouse.client(), postgres.engine, blobs.store(), window,
                            _source_maps, pool=_pool(postgres, blobs))
    context.log.info(f"{result.raw} raw events processed in window {config.after}..{config.upto}")
    if result.dead_lettered:
        context.log.warning(f"{result.dead_lettered} events set aside (pulsetrace dead-letters)")
    yield dg.MaterializeResult(asset_key="events", metadata={
        "rows": result.events, "dead_lettered": result.dead_lettered})
    yield dg.MaterializeResult(asset_key="transactions", metadata={"rows": result.transactions})
    yield dg.MaterializeResult(asset_key="feedback", metadata={"rows": result.feedback})
    yield dg.MaterializeResult(asset_key="issues", metadata={
        "new": result.new_issues, "regressed": result.regressions})
