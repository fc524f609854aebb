"""Migration 0008 moves a raw_events table with rows in it to an engine whose merges keep the
first landed copy of an event: no row is lost on the way, and it can be run again."""

from __future__ import annotations

import uuid

from core.warehouse import available_migrations, connect, migrate
from tests.warehouse.conftest import Warehouse

COPY_VERSION = 8


def test_an_existing_raw_events_keeps_its_rows_and_merges_to_the_first_copy(
    warehouse: Warehouse,
) -> None:
    url = f"{warehouse.url}upgrade_{uuid.uuid4().hex[:12]}"
    earlier = [m for m in available_migrations() if m.version < COPY_VERSION]
    [keep_first] = [m for m in available_migrations() if m.version == COPY_VERSION]
    bootstrap = connect(url, database="default")
    bootstrap.command(f"CREATE DATABASE `{url.rsplit('/', 1)[1]}`")
    bootstrap.close()
    client = connect(url)
    for migration in earlier:  # the warehouse as the previous release left it
        for statement in migration.statements():
            client.command(statement)
    twice, once = uuid.uuid4(), uuid.uuid4()
    columns = ["organization_id", "project_id", "event_id", "item_type", "received_at",
               "payload", "landing_retry"]

    def land(event_id: uuid.UUID, retry: int) -> None:
        client.insert("raw_events", [[1, 2, event_id, "event", "2026-11-27 10:00:00",
                                      f"copy {retry}", retry]], column_names=columns)

    land(twice, 0)
    land(once, 0)
    land(twice, 1)  # landed again later, after a retried insert

    # An upgrade cut off after the migration's statements, before its bookkeeping: run again.
    for statement in keep_first.statements():
        client.command(statement)
    assert COPY_VERSION in {m.version for m in migrate(url)}

    def copies() -> list[tuple[str, str]]:
        return [(str(r[0]), r[1]) for r in client.query(
            "SELECT event_id, payload FROM raw_events ORDER BY event_id, landed_at").result_rows]

    assert sorted(copies()) == sorted([(str(twice), "copy 0"), (str(once), "copy 0"),
                                       (str(twice), "copy 1")])
    client.command("OPTIMIZE TABLE raw_events FINAL")
    assert sorted(copies()) == sorted([(str(twice), "copy 0"), (str(once), "copy 0")])
    tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert not {"raw_events_next", "raw_events_before_0008"} & tables
    client.close()
