"""Migration 0010: an insert the size the runner stores under load (a worker's part of a
window, 5,000 processed events of ~3.5 KB: ~17 MB) is written as one compact part, where the
default threshold (10 MiB) made it a wide part of two files per column."""

from __future__ import annotations

import uuid

from clickhouse_connect.driver.client import Client

from core.warehouse import available_migrations, connect
from tests.warehouse.conftest import Warehouse

COMPACT_VERSION = 10
ROWS = 5_000


def fresh_database(warehouse: Warehouse, upto: int) -> Client:
    """A database with the migrations up to and including `upto` applied."""
    url = f"{warehouse.url}parts_{uuid.uuid4().hex[:12]}"
    bootstrap = connect(url, database="default")
    bootstrap.command(f"CREATE DATABASE `{url.rsplit('/', 1)[1]}`")
    bootstrap.close()
    client = connect(url)
    for migration in available_migrations():
        if migration.version <= upto:
            for statement in migration.statements():
                client.command(statement)
    return client


def store_processed_events(client: Client, table: str) -> list[tuple[str, int]]:
    """ROWS events with a payload of ~3.5 KB each, in one insert; its parts' (type, rows)."""
    payload = '{"exception": "' + "TypeError: x is undefined at checkout " * 90 + '"}'
    client.command(
        f"INSERT INTO {table} (organization_id, project_id, event_id, issue_id, timestamp,"
        " received_at, title, payload)"
        " SELECT 1, 2, generateUUIDv4(), number % 50, now64(3), now64(3),"
        " concat('TypeError ', toString(number)), concat(toString(number), {payload:String})"
        f" FROM numbers({ROWS})", parameters={"payload": payload})
    return [(part_type, int(rows)) for part_type, rows in client.query(
        "SELECT part_type, rows FROM system.parts WHERE database = currentDatabase()"
        " AND table = {table:String} AND active", parameters={"table": table}).result_rows]


def test_a_runner_sized_insert_of_processed_events_is_one_compact_part(
    warehouse: Warehouse,
) -> None:
    before = fresh_database(warehouse, COMPACT_VERSION - 1)
    after = fresh_database(warehouse, COMPACT_VERSION)
    try:
        # The same insert, before the migration and after it.
        assert store_processed_events(before, "events") == [("Wide", ROWS)]
        assert store_processed_events(after, "events") == [("Compact", ROWS)]
        assert after.command("SELECT count() FROM events WHERE issue_id = 7") == ROWS // 50
    finally:
        before.close()
        after.close()
