"""clickhouse-connect over HTTP against the warehouse server: everything PulseTrace uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.external import ExternalData

from core.warehouse import insert_rows
from tests.warehouse.conftest import Warehouse


def test_connects_like_to_a_clickhouse_server(client: Client) -> None:
    assert client.server_version == "26.9.2.1"
    assert client.server_settings["max_threads"].readonly == 0
    assert client.command("SELECT currentDatabase()") == "pulsetrace"


def test_query_rows_and_types(client: Client, table: str) -> None:
    client.command(f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two')")
    result = client.query(f"SELECT id, msg, toDate('2024-05-06') AS d FROM {table} ORDER BY id")
    assert result.column_names == ("id", "msg", "d")
    assert result.result_rows == [(1, "one", dt.date(2024, 5, 6)), (2, "two", dt.date(2024, 5, 6))]


def test_insert_python_rows_of_many_types(client: Client) -> None:
    client.command(
        """CREATE TABLE IF NOT EXISTS typed (
            id UInt64, ts DateTime64(3), level LowCardinality(String), tags Array(String),
            extra Map(String, String), value Nullable(Float64), uid UUID
        ) ENGINE = MergeTree ORDER BY id"""
    )
    client.command("TRUNCATE TABLE typed")
    stamp = dt.datetime(2025, 3, 4, 5, 6, 7, 890000)
    rows = [
        (i, stamp, "error", ["a", "b\n\nc"], {"k": str(i)}, None if i % 2 else i / 2,
         "6f1c1e9a-2a4b-4d52-9d0a-0d7c2a4bb001")
        for i in range(2000)
    ]  # fmt: skip
    summary = client.insert("typed", rows)
    assert summary.written_rows == 2000
    back = client.query("SELECT * FROM typed WHERE id = 2").result_rows[0]
    assert back[1] == stamp
    assert back[3] == ["a", "b\n\nc"]
    assert back[4] == {"k": "2"}
    assert back[5] == 1.0
    assert str(back[6]) == "6f1c1e9a-2a4b-4d52-9d0a-0d7c2a4bb001"
    assert client.command("SELECT count() FROM typed") == 2000


def test_query_arrow_and_insert_arrow(client: Client, table: str) -> None:
    batch = pa.table(
        {
            "id": pa.array(range(10_000), pa.uint64()),
            "msg": pa.array([f"message\n\n{i}" for i in range(10_000)]),
        }
    )
    summary = client.insert_arrow(table, batch)
    assert summary.written_rows == 10_000
    back = client.query_arrow(f"SELECT id, msg FROM {table} ORDER BY id")
    assert back.num_rows == 10_000
    assert back.column("msg")[7].as_py() == "message\n\n7"


def test_insert_rows_as_an_arrow_stream(client: Client, table: str) -> None:
    """core.warehouse.insert_rows, the way processing stores its rows: every row, in the
    named columns whatever their order in the table."""
    rows = pa.table({"msg": pa.array([f"event {i}\n\nü" for i in range(25_000)]),
                     "id": pa.array(range(25_000), pa.uint64())})
    assert insert_rows(client, table, rows) == 25_000
    assert client.query(f"SELECT count(), sum(id), any(msg) FROM {table} WHERE id = 7"
                        ).result_rows == [(1, 7, "event 7\n\nü")]
    assert client.command(f"SELECT count() FROM {table}") == 25_000


def test_command_results(client: Client, table: str) -> None:
    assert client.command("SELECT 41 + 1") == 42
    assert client.command("SELECT 'a', 'b'") == ["a", "b"]
    assert client.command(f"SELECT id FROM {table}") == ""  # empty result, not a summary
    summary = client.command(f"INSERT INTO {table} SELECT number, 'x' FROM numbers(5)")
    assert summary.written_rows == 5


def test_parameters_bound_on_the_server_and_on_the_client(client: Client, table: str) -> None:
    client.command(f"INSERT INTO {table} VALUES (1, 'it''s'), (2, 'tab\there')")
    server = client.query(
        f"SELECT msg FROM {table} WHERE id = {{id:UInt64}} AND msg = {{m:String}}",
        parameters={"id": 1, "m": "it's"},
    )
    assert server.result_rows == [("it's",)]
    local = client.query(
        f"SELECT id FROM {table} WHERE msg = %(m)s AND id IN %(ids)s",
        parameters={"m": "tab\there", "ids": [1, 2, 3]},
    )
    assert local.result_rows == [(2,)]
    # Long parameter values make clickhouse-connect switch to a multipart form body.
    many = list(range(5000))
    formed = client.query(
        f"SELECT count() FROM {table} WHERE id IN {{ids:Array(UInt64)}}", parameters={"ids": many}
    )
    assert formed.result_rows == [(2,)]


def test_temporary_tables_live_in_their_session(new_client: Callable[..., Client]) -> None:
    first, second = new_client(), new_client()
    first.command("CREATE TEMPORARY TABLE scratch (n UInt32)")
    first.insert("scratch", [(1,), (2,), (3,)])
    assert first.query("SELECT sum(n) FROM scratch").result_rows == [(6,)]
    with pytest.raises(DatabaseError) as caught:
        second.query("SELECT * FROM scratch")
    assert caught.value.code == 60


def test_session_keeps_set_and_use_but_not_url_settings(new_client: Callable[..., Client]) -> None:
    ch = new_client()
    ch.command("SET max_block_size = 1234")
    assert ch.command("SELECT getSetting('max_block_size')") == 1234
    # A per-query setting applies to that query only, as in ClickHouse.
    assert ch.command("SELECT getSetting('max_block_size')", settings={"max_block_size": 99}) == 99
    assert ch.command("SELECT getSetting('max_block_size')") == 1234
    assert ch.command("SELECT getSetting('max_threads')", settings={"max_threads": 1}) == 1
    assert ch.command("SELECT getSetting('max_threads')") != 1


def test_use_lasts_for_the_session_database_parameter_for_the_request(
    warehouse: Warehouse, new_client: Callable[..., Client]
) -> None:
    free = new_client(database="__default__")  # sends no `database` parameter
    free.command("CREATE DATABASE IF NOT EXISTS other")
    free.command("USE other")
    assert free.command("SELECT currentDatabase()") == "other"
    assert free.command("SELECT currentDatabase()", settings={"database": "system"}) == "system"
    assert free.command("SELECT currentDatabase()") == "other"


def test_sessionless_requests_share_nothing(new_client: Callable[..., Client]) -> None:
    ch = new_client(autogenerate_session_id=False)
    assert ch.command("SELECT getSetting('max_threads')", settings={"max_threads": 1}) == 1
    default = ch.command("SELECT getSetting('max_threads')")
    ch.command("SET max_threads = 1")  # allowed, but lasts for that request only
    assert ch.command("SELECT getSetting('max_threads')") == default


def test_errors_carry_the_clickhouse_code(client: Client) -> None:
    with pytest.raises(DatabaseError) as caught:
        client.query("SELECT * FROM no_such_table")
    assert caught.value.code == 60
    assert "UNKNOWN_TABLE" in str(caught.value)
    with pytest.raises(DatabaseError) as caught:
        client.query("SELEC 1")
    assert caught.value.code == 62
    assert client.command("SELECT 1") == 1  # and the client goes on working


def test_external_data(client: Client) -> None:
    data = ExternalData(
        file_name="ids.tsv", data=b"1\tone\n2\ttwo\n", structure=["id UInt32", "name String"]
    )
    result = client.query("SELECT name FROM ids ORDER BY id", external_data=data)
    assert result.result_rows == [("one",), ("two",)]


def test_query_formats_and_summary(warehouse: Warehouse, client: Client, table: str) -> None:
    client.command(f"INSERT INTO {table} VALUES (1, 'a')")
    assert client.raw_query(f"SELECT id, msg FROM {table}", fmt="JSONEachRow") == (
        b'{"id":1,"msg":"a"}\n'
    )
    assert client.raw_query(f"SELECT id FROM {table}", fmt="CSV") == b"1\n"
    arrow = client.raw_query(f"SELECT id FROM {table}", fmt="ArrowStream")
    assert pa.ipc.open_stream(arrow).read_all().num_rows == 1
    summary = client.raw_insert(table, ["id", "msg"], b"2\tb\n3\tc\n", fmt="TabSeparated")
    assert summary.written_rows == 2
