"""The one Dagster `Definitions` of PulseTrace: `dagster-webserver -m orchestration.definitions`."""

from __future__ import annotations

import dagster as dg

from core.settings import Settings, get_settings
from orchestration.assets import processed_batch
from orchestration.resources import resources_from
from orchestration.transforms import transforms_assets

process_raw_events = dg.define_asset_job(
    "process_raw_events", selection=dg.AssetSelection.assets(processed_batch),
    description="One micro-batch; started every second by orchestration.runner when new "
    "raw events have landed.",
)

REFRESH_MARTS = "refresh_marts"


def build_definitions(settings: Settings) -> dg.Definitions:
    """Processing, plus the dbt project at settings.transforms_dir as assets downstream of it."""
    transforms = transforms_assets(settings)
    jobs: list[dg.UnresolvedAssetJobDefinition] = [process_raw_events]
    if transforms:
        jobs.append(dg.define_asset_job(
            REFRESH_MARTS, selection=dg.AssetSelection.assets(*transforms),
            description="dbt build of the transforms project; started by orchestration.runner "
            "after new events were processed, at most every MARTS_REFRESH_SECONDS.",
        ))
    return dg.Definitions(
        assets=[processed_batch, *transforms],
        jobs=jobs,
        resources=resources_from(settings),
    )


defs = build_definitions(get_settings())
