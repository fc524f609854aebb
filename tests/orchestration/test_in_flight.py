"""Two landing workers: an insert's rows get their landing time when it begins but are seen
only when it ends. Processing must not move its cursor past an insert still in flight, or a
later insert of the other worker, seen first, lets it skip the slow insert's rows for good."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import polars as pl

from core.inflight import (
    LANDING_INSERTS,
    insert_in_flight,
    inserts_in_flight_since,
    landing_horizon,
)
from core.redis import redis_client
from ingest.landing import COLUMNS
from orchestration.processing import next_window
from tests.pipelines.grouping_set import raw_events_frame
from tests.stack import IngestStack


def rows(stack: IngestStack, count: int) -> pl.DataFrame:
    events = [{"event_id": uuid.uuid4().hex, "timestamp": time.time(), "message": "m"}
              for _ in range(count)]
    return raw_events_frame(events).with_columns(
        organization_id=pl.lit(stack.project.org_id, dtype=pl.UInt64),
        project_id=pl.lit(stack.project.project_id, dtype=pl.UInt64))


def test_the_cursor_waits_for_an_insert_in_flight(ingest_stack: IngestStack) -> None:
    redis = redis_client(ingest_stack.settings.redis_url)
    warehouse = ingest_stack.warehouse
    after = datetime.now(UTC) - timedelta(milliseconds=1)
    with insert_in_flight(redis, "slow-worker"):
        began = inserts_in_flight_since(redis)
        assert began is not None and after < began < datetime.now(UTC)
        time.sleep(0.05)
        warehouse.insert_arrow("raw_events", rows(ingest_stack, 3).select(COLUMNS).to_arrow())
        assert next_window(warehouse, after) is not None  # without the mark: processed
        assert landing_horizon(redis) == began
        assert next_window(warehouse, after, before=began) is None  # the runner waits
        # The slow insert ends: its rows carry the time it began, before the fast one's.
        slow = rows(ingest_stack, 2).with_columns(
            landed_at=pl.lit(began + timedelta(milliseconds=10), dtype=pl.Datetime("us", "UTC")))
        warehouse.insert_arrow("raw_events", slow.select(*COLUMNS, "landed_at").to_arrow())
    assert inserts_in_flight_since(redis) is None
    window = next_window(warehouse, after)
    assert window is not None
    landed = warehouse.command(
        "SELECT count() FROM raw_events WHERE landed_at > {a:DateTime64(6, 'UTC')}"
        " AND landed_at <= {u:DateTime64(6, 'UTC')}",
        parameters={"a": window.after, "u": window.upto})
    assert landed == 5  # both inserts, the slow one included


def test_the_mark_of_a_worker_killed_mid_insert_lapses(ingest_stack: IngestStack) -> None:
    # What a killed worker leaves: a mark nobody keeps alive.
    redis = redis_client(ingest_stack.settings.redis_url)
    redis.zadd(LANDING_INSERTS, {"killed-worker:1": time.time() - 3600})
    assert inserts_in_flight_since(redis) is None  # processing does not wait for it
    assert redis.zscore(LANDING_INSERTS, "killed-worker:1") is None  # and it is cleared


def test_rows_landed_before_the_horizon_are_processed_at_once(ingest_stack: IngestStack) -> None:
    # With no insert in flight the horizon is Redis's clock now: a row landed a moment ago is
    # in the next window (no settling time), and an insert marked after the horizon was read
    # lands its rows after it, so the window cannot pass them.
    redis = redis_client(ingest_stack.settings.redis_url)
    warehouse = ingest_stack.warehouse
    after = datetime.now(UTC) - timedelta(milliseconds=1)
    warehouse.insert_arrow("raw_events", rows(ingest_stack, 4).select(COLUMNS).to_arrow())
    horizon = landing_horizon(redis)
    assert abs((horizon - datetime.now(UTC)).total_seconds()) < 1
    with insert_in_flight(redis, "late-worker"):
        began = inserts_in_flight_since(redis)
        assert began is not None and began >= horizon
        warehouse.insert_arrow("raw_events", rows(ingest_stack, 3).select(COLUMNS).to_arrow())
    window = next_window(warehouse, after, before=horizon)
    assert window is not None and window.upto < began
    landed = warehouse.command(
        "SELECT count() FROM raw_events WHERE landed_at > {a:DateTime64(6, 'UTC')}"
        " AND landed_at <= {u:DateTime64(6, 'UTC')}",
        parameters={"a": window.after, "u": window.upto})
    assert landed == 4  # the first insert's rows; the later insert waits for the next window
