"""Migration 0010: an insert the size the runner stores under load (a worker's part of a
window, 5,000 processed events of ~3.5 KB: ~17 MB) is written as one compact part, where the
default threshold (10 MiB) made it a wide part of two files per column."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from tests.warehouse.conftest import Warehouse, database_before

COMPACT_VERSION = 10
ROWS = 5_000


def store_processed_events(client: Client) -> list[tuple[str, int]]:
    """ROWS events with a payload of ~3.5 KB each, in one insert; its parts' (type, rows)."""
    payload = '{"exception": "' + "TypeError: x is undefined at checkout " * 90 + '"}'
    client.command(
        "INSERT INTO events (organization_id, project_id, event_id, issue_id, timestamp,"
        " received_at, title, payload)"
        " SELECT 1, 2, generateUUIDv4(), number % 50, now64(3), now64(3),"
        " concat('TypeError ', toString(number)), concat(toString(number), {payload:String})"
        f" FROM numbers({ROWS})", parameters={"payload": payload})
    return [(part_type, int(rows)) for part_type, rows in client.query(
        "SELECT part_type, rows FROM system.parts WHERE database = currentDatabase()"
        " AND table = 'events' AND active").result_rows]


def test_a_runner_sized_insert_of_processed_events_is_one_compact_part(
    warehouse: Warehouse,
) -> None:
    _, before = database_before(warehouse, COMPACT_VERSION)
    _, after = database_before(warehouse, COMPACT_VERSION + 1)
    try:
        # The same insert, before the migration and after it.
        assert store_processed_events(before) == [("Wide", ROWS)]
        assert store_processed_events(after) == [("Compact", ROWS)]
        assert after.command("SELECT count() FROM events WHERE issue_id = 7") == ROWS // 50
    finally:
        before.close()
        after.close()
