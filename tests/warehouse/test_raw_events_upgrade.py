"""Migration 0008 moves a raw_events table with rows in it to an engine whose merges keep the
first landed copy of an event: no row is lost on the way, and it can be run again."""

from __future__ import annotations

import time
import uuid

from clickhouse_connect.driver.client import Client

from core.warehouse import available_migrations, migrate
from tests.warehouse.conftest import Warehouse, database_before

COPY_VERSION = 8


def test_an_existing_raw_events_keeps_its_rows_and_merges_to_the_first_copy(
    warehouse: Warehouse,
) -> None:
    url, client = database_before(warehouse, COPY_VERSION)
    [keep_first] = [m for m in available_migrations() if m.version == COPY_VERSION]
    twice, once = uuid.uuid4(), uuid.uuid4()
    columns = ["organization_id", "project_id", "event_id", "item_type", "received_at",
               "payload", "landing_retry"]

    def land(event_id: uuid.UUID, retry: int) -> None:
        client.insert("raw_events", [[1, 2, event_id, "event", "2026-11-27 10:00:00",
                                      f"copy {retry}", retry]], column_names=columns)

    land(twice, 0)
    land(once, 0)
    land(twice, 1)  # landed again later, after a retried insert

    # A landing worker inserts while the parts move (`pulsetrace migrate` beside a running
    # stack); then the upgrade is cut off before its bookkeeping, and run again.
    late = uuid.uuid4()
    for statement in keep_first.statements():
        client.command(statement)
        if statement.startswith("ALTER TABLE raw_events_next ATTACH"):
            land(late, 0)  # into the old table, after its parts moved
    assert COPY_VERSION in {m.version for m in migrate(url)}

    kept = [(str(twice), "copy 0"), (str(once), "copy 0"), (str(late), "copy 0")]
    # Parts linked twice hold the same rows; a merge may have run already.
    assert set(kept) <= set(copies(client)) <= {*kept, (str(twice), "copy 1")}
    assert merged(client) == sorted(kept)  # one copy each, the first landed
    tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert not {"raw_events_next", "raw_events_before_0008"} & tables
    client.close()


def merged(client: Client) -> list[tuple[str, str]]:
    """raw_events's rows once merged whole: OPTIMIZE does nothing while a background merge
    holds parts, so it is asked again until one part per partition is left."""
    for _ in range(50):
        client.command("OPTIMIZE TABLE raw_events FINAL")
        if client.command("SELECT count() = uniqExact(partition) FROM system.parts"
                          " WHERE database = currentDatabase() AND table = 'raw_events'"
                          " AND active"):
            break
        time.sleep(0.1)
    return copies(client)


def copies(client: Client) -> list[tuple[str, str]]:
    return sorted((str(r[0]), r[1]) for r in client.query(
        "SELECT event_id, payload FROM raw_events").result_rows)
