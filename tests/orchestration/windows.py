"""Windows run by hand, without a runner: raw rows landed as the landing worker lands them,
then exactly their window processed against real PostgreSQL and chDB."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from clickhouse_connect.driver.client import Client
from sqlalchemy import Engine

from cli.bootstrap import BootstrapResult
from core.blobs import blob_store
from core.settings import Settings
from ingest.landing import COLUMNS, LANDING_RETRY
from orchestration.processing import BatchResult, Window, process_window


@dataclass
class Stores:
    settings: Settings
    warehouse: Client
    engine: Engine
    project: BootstrapResult


def raw_row(stores: Stores, payload: str | bytes, item_type: str = "event",
            **columns: str) -> dict[str, Any]:
    """A raw_events row as the landing worker writes it (payload as given: text or bytes)."""
    return {"organization_id": stores.project.org_id, "project_id": stores.project.project_id,
            "event_id": uuid.uuid4().hex, "item_type": item_type,
            "received_at": datetime.now(UTC), "client_ip": "203.0.113.9", "user_agent": "",
            "ua_browser": "", "ua_browser_version": "", "ua_os": "", "ua_os_version": "",
            "ua_device": "", "sdk_name": "sentry.python", "sdk_version": "2.19.0",
            "payload": payload, **columns}


def land(stores: Stores, rows: list[dict[str, Any]], landing_retry: bool = False) -> Window:
    """Lands `rows` in one insert (marked as landed again with `landing_retry`, as the
    landing worker marks a retried insert); returns the window that holds just that insert."""
    binary = {name: pl.Binary for name in COLUMNS if isinstance(rows[0][name], bytes)}
    frame = pl.DataFrame(rows, schema_overrides={
        "organization_id": pl.UInt64, "project_id": pl.UInt64,
        "received_at": pl.Datetime("ms", "UTC"), **binary}).select(COLUMNS)
    frame = frame.with_columns(pl.lit(int(landing_retry), pl.UInt8).alias(LANDING_RETRY))
    return land_frame(stores.warehouse, frame)


def land_frame(warehouse: Client, raw: pl.DataFrame) -> Window:
    """Lands the raw_events rows of `raw` in one insert; returns the window that holds just
    that insert."""
    warehouse.insert_arrow("raw_events", raw.to_arrow())
    landed = warehouse.query(
        "SELECT max(landed_at) FROM raw_events WHERE event_id = {id:UUID}",
        parameters={"id": raw["event_id"][0]}).result_rows[0][0]
    landed = landed if landed.tzinfo else landed.replace(tzinfo=UTC)
    return Window(landed - timedelta(microseconds=1), landed)


def process(stores: Stores, window: Window) -> BatchResult:
    """Processes exactly `window`, storing included, with a cursor of its own."""
    return process_window(stores.warehouse, stores.engine, blob_store(stores.settings), window,
                          cursor_name=f"test-window-{uuid.uuid4().hex}")


def run_window(stores: Stores, rows: list[dict[str, Any]],
               landing_retry: bool = False) -> BatchResult:
    """Lands `rows` in one insert and processes exactly that window."""
    return process(stores, land(stores, rows, landing_retry))
