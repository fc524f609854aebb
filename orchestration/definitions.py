"""The one Dagster `Definitions` of PulseTrace: `dagster-webserver -m orchestration.definitions`."""

from __future__ import annotations

import dagster as dg

from core.settings import get_settings
from orchestration.assets import processed_batch
from orchestration.resources import resources_from

process_raw_events = dg.define_asset_job(
    "process_raw_events", selection=dg.AssetSelection.assets(processed_batch),
    description="One micro-batch; started every second by orchestration.runner when new "
    "raw events have landed.",
)

defs = dg.Definitions(
    assets=[processed_batch],
    jobs=[process_raw_events],
    resources=resources_from(get_settings()),
)
