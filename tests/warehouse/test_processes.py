"""Several client processes at once, and a restart of the server on the same data."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import clickhouse_connect
import pyarrow as pa

from core.embedded.process import free_port
from core.embedded.warehouse_service import start_warehouse
from tests.warehouse.conftest import Warehouse

BATCHES = 10
ROWS = 5_000


def insert_batches(port: int, table: str, worker: int) -> int:
    """Runs in a child process with a client of its own."""
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="pulsetrace")
    written = 0
    for batch in range(BATCHES):
        start = (worker * BATCHES + batch) * ROWS
        if batch % 2:
            rows = [(i, f"worker {worker}") for i in range(start, start + ROWS)]
            written += client.insert(table, rows, column_names=["id", "msg"]).written_rows
        else:
            data = pa.table(
                {
                    "id": pa.array(range(start, start + ROWS), pa.uint64()),
                    "msg": pa.array([f"worker {worker}"] * ROWS),
                }
            )
            written += client.insert_arrow(table, data).written_rows
    client.close()
    return written


def test_three_processes_inserting_at_once_lose_no_rows(warehouse: Warehouse, table: str) -> None:
    context = multiprocessing.get_context("spawn")  # no forked copies of this process's state
    with context.Pool(3) as pool:
        written = pool.starmap(insert_batches, [(warehouse.port, table, w) for w in range(3)])
    assert written == [BATCHES * ROWS] * 3
    client = warehouse.client()
    total, distinct = client.query(f"SELECT count(), uniqExact(id) FROM {table}").result_rows[0]
    client.close()
    assert total == distinct == 3 * BATCHES * ROWS


def test_restart_keeps_the_data(tmp_path: Path) -> None:
    port = free_port()
    proc = start_warehouse(tmp_path, port)
    try:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="pulsetrace")
        client.command("CREATE TABLE kept (n UInt64) ENGINE = MergeTree ORDER BY n")
        client.insert("kept", [(n,) for n in range(1234)])
        client.close()
    finally:
        assert proc.stop() == 0

    proc = start_warehouse(tmp_path, port)
    try:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="pulsetrace")
        assert client.command("SELECT count() FROM kept") == 1234
        client.close()
    finally:
        assert proc.stop() == 0


def test_a_second_server_cannot_open_the_same_data(warehouse: Warehouse) -> None:
    try:
        proc = start_warehouse(warehouse.data_dir, free_port(), timeout=20)
    except RuntimeError as exc:
        assert "exited" in str(exc)
    else:
        proc.stop()
        raise AssertionError("a second process opened the same chDB data directory")
