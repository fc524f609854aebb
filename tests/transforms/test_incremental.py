"""A build after new events does work in proportion to the new data: only the days with
newly processed events are rebuilt, older days' stored parts are left exactly as they were,
and the numbers are right afterwards (including an event the pipeline processed again)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from clickhouse_connect.driver.client import Client

from tests.transforms import dataset
from tests.transforms.conftest import Warehouse

DAY_PARTITIONED = ("fct_issue_hourly", "fct_issue_daily", "int_issue_tag_counts_daily",
                   "int_issue_releases_daily", "fct_web_vitals_daily", "fct_api_latency_daily")


def parts(client: Client, database: str, table: str) -> dict[str, set[str]]:
    """The active data parts of each partition (a day) of a table."""
    found: dict[str, set[str]] = {}
    for partition, name in client.query(
        "SELECT partition, name FROM system.parts WHERE active AND database = {db:String}"
        " AND table = {table:String}", parameters={"db": database, "table": table},
    ).result_rows:
        found.setdefault(partition, set()).add(name)
    return found


def reprocess_margin_seconds(project_dir: str) -> int:
    project = yaml.safe_load((Path(project_dir) / "dbt_project.yml").read_text())
    return int(project["vars"]["reprocess_margin_seconds"])


def days_within_margin(rows: Sequence[dataset.Event | dataset.Transaction],
                       margin: timedelta) -> set[date]:
    """The days of the rows processed within `margin` of the newest: a build after more rows
    looks again at those (see transforms/macros/incremental.sql)."""
    newest = max(row.processed_at for row in rows)
    return {row.timestamp.date() for row in rows if row.processed_at > newest - margin}


def test_a_build_after_new_events_rebuilds_only_their_days(warehouse: Warehouse) -> None:
    base = dataset.now_hour()
    data = dataset.build(base=base)
    data.insert(warehouse.source)
    warehouse.dbt("build")
    marts = warehouse.settings.marts_database
    before = {table: parts(warehouse.marts, marts, table) for table in DAY_PARTITIONED}
    stats_before = dict(warehouse.marts.query(
        "SELECT issue_id, events FROM fct_issue_stats").result_rows)

    # New events, all within the latest hour, for an existing issue and a new one; and one
    # old event (two days ago) processed again by the pipeline, now grouped the same way.
    today = base.date()
    new_events = [
        dataset.Event(1, 1, str(uuid.uuid4()), issue, base + timedelta(minutes=minute),
                      "shop@1.2", f"late-user-{minute % 4}", "Chrome", "Linux",
                      "https://shop.example.com/cart/9", "pro", datetime.now(UTC))
        for issue in (101, 199) for minute in range(0, 50, 5)
    ]
    reprocessed = next(e for e in data.events if e.timestamp.date() == today - timedelta(days=2))
    again = dataset.Event(**{**reprocessed.__dict__, "processed_at": datetime.now(UTC)})
    page_loads = dataset.transactions(random.Random(9), base, 1, 1, 12)
    for transaction in page_loads:
        transaction.timestamp = base + timedelta(minutes=30)
        transaction.processed_at = datetime.now(UTC)
    data.insert(warehouse.source, events=[*new_events, again], transactions=page_loads)
    data.events += new_events
    warehouse.dbt("build")

    expected = data.issue_stats()
    found = dict(warehouse.marts.query("SELECT issue_id, events FROM fct_issue_stats").result_rows)
    assert found == {issue: answer["events"] for issue, answer in expected.items()}
    assert found[101] == stats_before[101] + 10 and found[199] == 10
    users = dict(warehouse.marts.query("SELECT issue_id, users FROM fct_issue_stats").result_rows)
    assert users[199] == 4

    # Also rebuilt: the days of rows processed within the reprocessing margin before a model's
    # newest (the first hour after midnight UTC, the last minutes of yesterday's events).
    margin = timedelta(seconds=reprocess_margin_seconds(warehouse.settings.transforms_dir))
    rebuilt_days = ({today, reprocessed.timestamp.date()}
                    | days_within_margin(data.stored_events, margin)
                    | days_within_margin(data.transactions, margin))
    for table in DAY_PARTITIONED:
        after = parts(warehouse.marts, marts, table)
        for partition, names in before[table].items():
            day = date.fromisoformat(partition)
            if day in rebuilt_days:
                continue
            # Not rewritten, not even copied: the very same parts.
            assert after[partition] == names, (table, partition)
        assert any(after.get(str(day)) != before[table].get(str(day)) for day in rebuilt_days
                   if str(day) in after), table
