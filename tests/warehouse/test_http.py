"""The HTTP interface itself, spoken by hand: headers, inline inserts, encodings, errors."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import lz4.frame
import pytest
import urllib3
import zstandard
from clickhouse_connect.driver.client import Client

from tests.warehouse.conftest import Warehouse

http = urllib3.PoolManager(retries=False)


def request(
    warehouse: Warehouse,
    method: str,
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> urllib3.BaseHTTPResponse:
    url = warehouse.url + ("?" + urlencode(params) if params else "")
    return http.request(method, url, body=body, headers=headers or {})


def post(
    warehouse: Warehouse, body: bytes | Iterator[bytes] = b"", **params: str
) -> urllib3.BaseHTTPResponse:
    return request(warehouse, "POST", body, **params)


def assert_error(response: urllib3.BaseHTTPResponse, status: int, code: int, text: str) -> None:
    body = response.data.decode()
    assert response.status == status, body
    assert response.headers["X-ClickHouse-Exception-Code"] == str(code)
    assert body.startswith(f"Code: {code}. DB::Exception: "), body
    assert text in body


def assert_still_serving(warehouse: Warehouse) -> None:
    response = post(warehouse, b"SELECT 40 + 2")
    assert (response.status, response.data) == (200, b"42\n")


def test_ping(warehouse: Warehouse) -> None:
    response = http.request("GET", warehouse.url + "ping")
    assert (response.status, response.data) == (200, b"Ok.\n")


def test_response_headers(warehouse: Warehouse) -> None:
    response = request(warehouse, "GET", None, {}, query="SELECT 1 AS x", query_id="my-query-1")
    assert response.status == 200
    assert response.data == b"1\n"
    headers = response.headers
    assert headers["X-ClickHouse-Query-Id"] == "my-query-1"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    assert headers["Content-Type"].startswith("text/tab-separated-values")
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert set(summary) >= {
        "read_rows", "read_bytes", "written_rows", "written_bytes",
        "total_rows_to_read", "result_rows", "result_bytes", "elapsed_ns",
    }  # fmt: skip
    assert all(isinstance(value, str) for value in summary.values())


def test_formats_from_clause_or_default_format(warehouse: Warehouse) -> None:
    response = post(warehouse, b"SELECT 1 AS x FORMAT json")
    assert response.headers["X-ClickHouse-Format"] == "JSON"
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.data)["data"] == [{"x": 1}]
    response = post(warehouse, b"SELECT 1 AS x", default_format="JSONCompact")
    assert json.loads(response.data)["data"] == [[1]]
    response = post(warehouse, b"SELECT 1 AS x", default_format="Native")
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_query_split_between_url_and_body(warehouse: Warehouse) -> None:
    response = post(warehouse, b"1 + 1 AS two", query="SELECT")
    assert response.data == b"2\n"


def test_get_is_read_only(warehouse: Warehouse) -> None:
    response = request(
        warehouse, "GET", None, {}, query="CREATE TABLE t_get (a UInt8) ENGINE = Log"
    )
    assert_error(response, 403, 164, "method GET implies readonly")


def make_table(client: Client, name: str) -> str:
    client.command(f"DROP TABLE IF EXISTS {name}")
    client.command(f"CREATE TABLE {name} (id UInt64, msg String) ENGINE = MergeTree ORDER BY id")
    return name


@pytest.mark.parametrize("fmt", ["RowBinary", "Native", "TabSeparated"])
def test_inline_insert_data_with_blank_lines(
    warehouse: Warehouse, client: Client, fmt: str
) -> None:
    """chDB cuts inline INSERT data at a `\\n\\n` byte pair; the server must not."""
    table = make_table(client, f"inline_{fmt.lower()}")
    data = client.raw_query("SELECT number AS id, 'a\\n\\nb' AS msg FROM numbers(3)", fmt=fmt)
    assert b"\n\n" in data or fmt == "TabSeparated"
    response = post(warehouse, f"INSERT INTO {table} FORMAT {fmt}\n".encode() + data,
                    database="pulsetrace")  # fmt: skip
    assert response.status == 200, response.data
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == "3"
    assert client.query(f"SELECT msg FROM {table}").result_rows == [("a\n\nb",)] * 3


def test_insert_in_url_with_chunked_body(warehouse: Warehouse, client: Client) -> None:
    table = make_table(client, "chunked")

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            yield f"{i}\tline {i}\n".encode()

    response = post(warehouse, chunks(), query=f"INSERT INTO {table} FORMAT TSV",
                    database="pulsetrace")  # fmt: skip
    assert response.status == 200, response.data
    assert client.command(f"SELECT count() FROM {table}") == 100


def _exchange(warehouse: Warehouse, data: bytes, close_sending: bool = True) -> bytes:
    """Send raw bytes on one connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", warehouse.port), timeout=10) as sock:
        sock.sendall(data)
        if close_sending:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _insert_head(table: str, extra: str) -> bytes:
    target = "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT TSV",
                               "database": "pulsetrace"})
    return f"POST {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def test_large_insert_streams_into_the_table(warehouse: Warehouse, client: Client) -> None:
    """A body far larger than a socket buffer goes to the engine as it arrives; every row
    lands, each whole."""
    table = make_table(client, "large_insert")
    line = "{}\t" + "x" * 1_000 + "\n"
    data = "".join(line.format(i) for i in range(40_000)).encode()  # ~40 MB
    response = post(warehouse, data, query=f"INSERT INTO {table} FORMAT TSV",
                    database="pulsetrace")  # fmt: skip
    assert response.status == 200, response.data
    assert client.query(f"SELECT count(), uniqExact(id), min(length(msg)), max(length(msg))"
                        f" FROM {table}").result_rows == [(40_000, 40_000, 1_000, 1_000)]


def test_body_ending_before_its_length_inserts_nothing(
    warehouse: Warehouse, client: Client
) -> None:
    table = make_table(client, "short_body")
    rows = b"".join(f"{i}\tline {i}\n".encode() for i in range(1_000))
    head = _insert_head(table, f"Content-Length: {len(rows) + 5_000}\r\n")
    reply = _exchange(warehouse, head + rows)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:300]
    assert b"Connection: close\r\n" in reply
    assert b"The request body ended before its Content-Length" in reply
    assert client.command(f"SELECT count() FROM {table}") == 0
    assert_still_serving(warehouse)


@pytest.mark.parametrize("size_line", [b"zz", b"-5", b"0x5", b""])
def test_broken_chunked_body_inserts_nothing(
    warehouse: Warehouse, client: Client, size_line: bytes
) -> None:
    table = make_table(client, "broken_chunks")
    rows = b"".join(f"{i}\tline {i}\n".encode() for i in range(100))
    chunk = f"{len(rows):x}\r\n".encode() + rows + b"\r\n"
    head = _insert_head(table, "Transfer-Encoding: chunked\r\n")
    reply = _exchange(warehouse, head + chunk + size_line + b"\r\nnot a chunk\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:300]
    assert b"Malformed chunk size line" in reply
    assert client.command(f"SELECT count() FROM {table}") == 0
    assert_still_serving(warehouse)


def test_unread_body_is_skipped_for_the_next_request(
    warehouse: Warehouse, client: Client
) -> None:
    """A request refused before its body was read (an unknown table) leaves the connection
    at the next request, which is served."""
    rows = b"".join(f"{i}\tline {i}\n".encode() for i in range(5_000))
    refused = _insert_head("no_such_table", f"Content-Length: {len(rows)}\r\n") + rows
    query = b"SELECT 40 + 2"
    following = (f"POST /?database=pulsetrace HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 f"{len(query)}\r\nConnection: close\r\n\r\n").encode() + query
    reply = _exchange(warehouse, refused + following, close_sending=False)
    first, _, second = reply.partition(b"HTTP/1.1 200 OK\r\n")
    assert first.startswith(b"HTTP/1.1 404 Not Found\r\n"), reply[:300]
    assert b"no_such_table" in first
    assert second.endswith(b"\r\n\r\n42\n"), reply[-300:]


@pytest.mark.parametrize(
    "encoding, compress",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("lz4", lz4.frame.compress),
        ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
    ],
)
def test_compressed_bodies(
    warehouse: Warehouse, client: Client, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    table = make_table(client, f"encoded_{encoding}")
    data = b"".join(f"{i}\tmsg {i}\n".encode() for i in range(1000))
    # Two compressed frames back to back, as clickhouse-connect sends one per block.
    body = compress(data[:5000]) + compress(data[5000:])
    response = request(warehouse, "POST", body, {"Content-Encoding": encoding},
                       query=f"INSERT INTO {table} FORMAT TSV", database="pulsetrace")  # fmt: skip
    assert response.status == 200, response.data
    assert client.command(f"SELECT count() FROM {table}") == 1000
    response = request(warehouse, "POST", compress(b"SELECT 7"), {"Content-Encoding": encoding})
    assert response.data == b"7\n"


def test_broken_compressed_body(warehouse: Warehouse) -> None:
    broken = gzip.compress(b"SELECT 1")[:-6] + b"garbage"
    response = request(warehouse, "POST", broken, {"Content-Encoding": "gzip"})
    assert_error(response, 400, 354, "Cannot decode the request body (Content-Encoding: gzip)")
    response = request(warehouse, "POST", b"SELECT 1", {"Content-Encoding": "snappy-ish"})
    assert_error(response, 500, 89, "Unknown Content-Encoding 'snappy-ish'")
    assert_still_serving(warehouse)


def test_garbage_query(warehouse: Warehouse) -> None:
    assert_error(post(warehouse, b"\x00\xffhello there"), 400, 36, "not valid UTF-8")
    assert_error(post(warehouse, b"SELEKT 1"), 400, 62, "Syntax error")
    assert_error(post(warehouse, b"SELECT 1; SELECT 2"), 400, 62, "Multi-statements")
    assert_error(post(warehouse, b""), 400, 62, "Empty query")
    assert_still_serving(warehouse)


def test_malformed_http_request(warehouse: Warehouse) -> None:
    reply = _exchange(warehouse, b"THIS IS NOT HTTP\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"X-ClickHouse-Exception-Code: 36\r\n" in reply
    assert b"Code: 36. DB::Exception: Malformed HTTP request line" in reply
    assert_still_serving(warehouse)


def test_bad_setting_name(warehouse: Warehouse, client: Client) -> None:
    response = post(warehouse, b"SELECT 1", max_threadz="2")
    assert_error(response, 404, 115, "Unknown setting 'max_threadz'")
    response = post(warehouse, b"SELECT getSetting('max_threads')", max_threads="1")
    assert response.data == b"1\n"
    assert_still_serving(warehouse)
    assert client.command("SELECT 1") == 1


def test_session_errors(warehouse: Warehouse) -> None:
    response = post(warehouse, b"SELECT 1", session_id="never-seen", session_check="1")
    assert_error(response, 500, 372, "Session never-seen not found")
    response = post(warehouse, b"SELECT 1", session_id="s1", session_timeout="lots")
    assert_error(response, 500, 374, "Invalid session timeout")

    # The probe and the slow query race for the session: whichever comes second is refused.
    # When the slow query loses (a probe held the session at that moment), try again.
    for _attempt in range(5):
        slow_answer: list[tuple[int, bytes]] = []

        def slow(slow_answer: list[tuple[int, bytes]]) -> None:
            answer = post(warehouse, b"SELECT sleepEachRow(0.5) FROM numbers(3)", session_id="busy")
            slow_answer.append((answer.status, answer.data[:300]))

        worker = threading.Thread(target=slow, args=(slow_answer,))
        worker.start()
        refused = None
        try:
            while worker.is_alive() and refused is None:
                response = post(warehouse, b"SELECT 1", session_id="busy")
                if response.status != 200:
                    refused = response
        finally:
            worker.join()
        if refused is not None:
            assert_error(refused, 500, 373, "Session busy is locked by a concurrent client")
            assert slow_answer[0][0] == 200, slow_answer
            break
        assert b"SESSION_IS_LOCKED" in slow_answer[0][1], slow_answer  # lost the race
    else:
        raise AssertionError("the slow query never held the session in 5 attempts")
    assert post(warehouse, b"SELECT 1", session_id="busy").data == b"1\n"


def test_close_session(warehouse: Warehouse) -> None:
    post(warehouse, b"CREATE TEMPORARY TABLE gone (a UInt8)", session_id="short")
    post(warehouse, b"SELECT 1", session_id="short", close_session="1")
    response = post(warehouse, b"SELECT 1", session_id="short", session_check="1")
    assert response.headers["X-ClickHouse-Exception-Code"] == "372"


def test_unknown_path_and_method(warehouse: Warehouse) -> None:
    assert http.request("GET", warehouse.url + "play").status == 404
    response = http.request("DELETE", warehouse.url)
    assert_error(response, 405, 1, "HTTP method DELETE is not supported")


def test_idle_sessions_are_closed(warehouse: Warehouse) -> None:
    post(warehouse, b"CREATE TEMPORARY TABLE short_lived (a UInt8)", session_id="idle",
         session_timeout="1")  # fmt: skip
    assert post(warehouse, b"SELECT 1", session_id="idle", session_check="1").status == 200
    time.sleep(2.5)  # the reaper looks every second
    response = post(warehouse, b"SELECT 1", session_id="idle", session_check="1")
    assert_error(response, 500, 372, "Session idle not found")


def test_sessionless_requests_leave_nothing_behind(warehouse: Warehouse) -> None:
    assert post(warehouse, b"CREATE TEMPORARY TABLE leftover (a UInt8)").status == 200
    assert post(warehouse, b"USE system").status == 200
    for _ in range(10):  # whichever pooled connection answers
        assert_error(post(warehouse, b"SELECT * FROM leftover"), 404, 60, "leftover")
        assert post(warehouse, b"SELECT currentDatabase()").data == b"default\n"


def test_echoed_query_id_cannot_inject_headers(warehouse: Warehouse) -> None:
    response = post(warehouse, b"SELECT 1", query_id="q1\r\nX-Injected: yes")
    assert response.status == 200
    assert "X-Injected" not in response.headers
    assert response.headers["X-ClickHouse-Query-Id"] == "q1  X-Injected: yes"
