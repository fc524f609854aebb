"""A password and a body limit: refused clearly, and the server keeps serving."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator

import clickhouse_connect
import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.warehouse.conftest import SECRET, SMALL_BODY_LIMIT, Warehouse
from tests.warehouse.test_http import assert_error

http = urllib3.PoolManager(retries=False)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def post(
    warehouse: Warehouse,
    body: bytes | Iterator[bytes],
    headers: dict[str, str] | None = None,
    query: str = "",
) -> urllib3.BaseHTTPResponse:
    url = warehouse.url + (f"?query={query}" if query else "")
    return http.request("POST", url, body=body, headers=headers or basic("default", SECRET))


def assert_still_serving(warehouse: Warehouse) -> None:
    response = post(warehouse, b"SELECT 40 + 2")
    assert (response.status, response.data) == (200, b"42\n")


def test_credentials_in_each_of_the_three_places(secured_warehouse: Warehouse) -> None:
    assert post(secured_warehouse, b"SELECT 1").data == b"1\n"
    headers = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": SECRET}
    assert post(secured_warehouse, b"SELECT 1", headers).data == b"1\n"
    response = http.request(
        "POST", secured_warehouse.url + f"?user=default&password={SECRET}", body=b"SELECT 1"
    )
    assert response.data == b"1\n"


def test_wrong_or_missing_password(secured_warehouse: Warehouse) -> None:
    for headers in (basic("default", "nope"), basic("someone", SECRET), {"X-Other": "1"}):
        response = post(secured_warehouse, b"SELECT 1", headers)
        assert_error(response, 401, 516, "Authentication failed")
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(host="127.0.0.1", port=secured_warehouse.port, password="x")
    assert caught.value.code == 516
    assert_still_serving(secured_warehouse)
    good = secured_warehouse.client()
    assert good.command("SELECT 1") == 1
    good.close()


def test_oversized_body(secured_warehouse: Warehouse) -> None:
    too_big = b"SELECT 1 -- " + b"x" * SMALL_BODY_LIMIT
    response = post(secured_warehouse, too_big)
    assert_error(response, 413, 229, f"exceeds the warehouse limit of {SMALL_BODY_LIMIT} bytes")
    assert_still_serving(secured_warehouse)


def test_oversized_chunked_body(secured_warehouse: Warehouse) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"SELECT 1 -- "
        for _ in range(20):
            yield b"y" * 100_000

    response = post(secured_warehouse, chunks())
    assert_error(response, 413, 229, "received request body exceeds")
    assert_still_serving(secured_warehouse)


def test_oversized_once_decompressed(secured_warehouse: Warehouse) -> None:
    bomb = gzip.compress(b"SELECT 1 -- " + b"z" * (4 * SMALL_BODY_LIMIT))
    assert len(bomb) < SMALL_BODY_LIMIT
    headers = {**basic("default", SECRET), "Content-Encoding": "gzip"}
    response = post(secured_warehouse, bomb, headers)
    assert_error(response, 413, 229, "decompressed request body exceeds")
    assert_still_serving(secured_warehouse)
