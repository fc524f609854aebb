"""Landing: accepted events travel through the Redis stream into ClickHouse `raw_events`.

A landing row is encoded once by ingest (msgpack; a batch's rows LZ4-compressed, see
ingest.queue) and decoded here in batches. The drain reads with a consumer group and
acknowledges entries only after ClickHouse took the insert, so a worker killed mid-batch
loses nothing: its pending entries are re-read by itself after a failed insert, or claimed
by any worker once they have been idle for `claim_idle_ms`.
Re-inserting is harmless: `raw_events` collapses rows with the same (project, event id),
and rows landed again are marked (`landing_retry`), so that processing, which reads rows
by landing time, counts an event whose first copy it has processed only once.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import lz4.block
import msgspec
import redis
from clickhouse_connect.driver.client import Client

from core.inflight import insert_in_flight
from ingest.queue import (
    COMPRESSED_ROWS_FIELD,
    DROPPED_ROWS_FIELD,
    ENTRY_MAX_BYTES,
    LANDING_GROUP,
    LANDING_STREAM,
    ROW_COUNT_FIELD,
    ROWS_FIELD,
    ROWS_PER_ENTRY,
    bounded_runs,
)


class LandingRow(msgspec.Struct, array_like=True, frozen=True):
    organization_id: int
    project_id: int
    event_id: str
    item_type: str
    received_at: float
    client_ip: str
    user_agent: str
    ua_browser: str
    ua_browser_version: str
    ua_os: str
    ua_os_version: str
    ua_device: str
    sdk_name: str
    sdk_version: str
    payload: bytes
    # How far the SDK's clock was behind the receipt when it sent the envelope (negative:
    # ahead), 0 under 55 minutes (see ingest.api.clock_drift_ms). Last, with a default: rows
    # queued before it existed decode as they were.
    clock_drift_ms: int = 0


COLUMNS = [
    "organization_id", "project_id", "event_id", "item_type", "received_at", "client_ip",
    "user_agent", "ua_browser", "ua_browser_version", "ua_os", "ua_os_version", "ua_device",
    "sdk_name", "sdk_version", "payload",
]

# 1 on the rows of a landing that may have been done before (see migration 0005).
LANDING_RETRY = "landing_retry"
CLOCK_DRIFT_MS = "clock_drift_ms"  # migration 0009

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[LandingRow])
# Entries queued before rows were grouped per request held one row under `r`.
_LEGACY_ROW_FIELD = b"r"
_legacy_decoder = msgspec.msgpack.Decoder(LandingRow)
# What one insert may carry at most, by default: half the embedded warehouse's body limit
# (256 MiB), leaving room for the insert format's own bytes.
MAX_INSERT_BYTES = 128 * 1024 * 1024
# A row's bytes in an insert besides its payload and User-Agent (ids, times, short strings).
_ROW_OVERHEAD_BYTES = 256


def encode_row(row: LandingRow) -> bytes:
    return _encoder.encode(row)


def ensure_group(client: redis.Redis, stream: str = LANDING_STREAM) -> None:
    try:
        client.xgroup_create(stream, LANDING_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class DrainResult:
    batches: int = 0
    rows: int = 0
    oldest_received_at: float | None = None


def _entry_bytes(fields: dict[bytes, bytes]) -> int:
    """The entry's rows' bytes, uncompressed."""
    compressed = fields.get(COMPRESSED_ROWS_FIELD)
    if compressed is not None:
        return int.from_bytes(compressed[:4], "little")  # the LZ4 block's size, stored first
    return len(fields.get(ROWS_FIELD) or fields.get(_LEGACY_ROW_FIELD) or b"")


def entry_rows(fields: dict[bytes, bytes]) -> list[LandingRow]:
    """The landing rows a stream entry holds, in order."""
    if COMPRESSED_ROWS_FIELD in fields:
        rows = _decoder.decode(lz4.block.decompress(fields[COMPRESSED_ROWS_FIELD]))
        dropped = fields.get(DROPPED_ROWS_FIELD)
        if dropped:
            left_out = {int(position) for position in dropped.split(b",")}
            rows = [row for position, row in enumerate(rows) if position not in left_out]
        return rows
    if ROWS_FIELD in fields:
        return _decoder.decode(fields[ROWS_FIELD])
    return [_legacy_decoder.decode(fields[_LEGACY_ROW_FIELD])]


def _rows(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[LandingRow]:
    rows: list[LandingRow] = []
    for _, fields in entries:
        rows += entry_rows(fields)
    return rows


def _insert_bytes(row: LandingRow) -> int:
    """About how many bytes the row takes in an insert."""
    return len(row.payload) + len(row.user_agent) + _ROW_OVERHEAD_BYTES


def _inserts(rows: list[LandingRow], max_bytes: int) -> list[list[LandingRow]]:
    """The rows in consecutive inserts of at most max_bytes each (at least one row each)."""
    return [rows[run] for run in bounded_runs([_insert_bytes(row) for row in rows], max_bytes)]


def _received_ms(received_at: float) -> int:
    """Milliseconds since the epoch as `datetime.fromtimestamp` (to the microsecond, half to
    even) then DateTime64(3) (truncated) make them, without a datetime per row."""
    seconds = math.floor(received_at)
    return (seconds * 1_000_000 + round((received_at - seconds) * 1_000_000)) // 1000


def _utf8(payload: bytes) -> bytes:
    """The payload as valid UTF-8: ingest's validation leaves bytes in fields it skips
    unchecked, and readers of raw_events decode the column as UTF-8."""
    if payload.isascii():
        return payload  # nearly every event, checked at memory speed
    try:
        payload.decode()
    except UnicodeDecodeError:
        return payload.decode("utf-8", "replace").encode()
    return payload


def _columns(rows: list[LandingRow]) -> list[list[Any]]:
    """The insert's data, one list per column of COLUMNS: clickhouse-connect takes columns
    as they are, where rows cost a transposition, and bytes for String columns as they are,
    where str costs an encoding."""
    return [
        [row.organization_id for row in rows],
        [row.project_id for row in rows],
        [row.event_id for row in rows],
        [row.item_type for row in rows],
        [_received_ms(row.received_at) for row in rows],
        [row.client_ip for row in rows],
        [row.user_agent for row in rows],
        [row.ua_browser for row in rows],
        [row.ua_browser_version for row in rows],
        [row.ua_os for row in rows],
        [row.ua_os_version for row in rows],
        [row.ua_device for row in rows],
        [row.sdk_name for row in rows],
        [row.sdk_version for row in rows],
        [_utf8(row.payload) for row in rows],
    ]


def _next_entries(
    client: redis.Redis, stream: str, consumer: str, max_rows: int, max_bytes: int,
    claim_idle_ms: int,
) -> tuple[list[tuple[bytes, dict[bytes, bytes]]], bool]:
    """The next entries to land: about max_rows rows (an entry holds up to ROWS_PER_ENTRY)
    and at most about max_bytes (an entry holds about ENTRY_MAX_BYTES); and whether they are
    a retry (read before, so perhaps landed before)."""
    count = max(1, min(max_rows // ROWS_PER_ENTRY, max_bytes // ENTRY_MAX_BYTES))
    # 1. Our own pending entries (an insert of ours failed earlier).
    own = client.xreadgroup(LANDING_GROUP, consumer, {stream: "0"}, count=count)
    pending = [(entry_id, fields) for entry_id, fields in (own[0][1] if own else []) if fields]
    if pending:
        return pending, True
    # 2. Entries a dead worker read but never acknowledged.
    reply = client.xautoclaim(
        stream, LANDING_GROUP, consumer, claim_idle_ms, "0-0", count=count
    )
    # Redis 6.2 answers [next, entries], 7+ adds deleted ids; a deleted entry has no fields.
    claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields]
    if claimed:
        return claimed, True
    # 3. New entries, read until they hold max_rows rows (entries of single events hold one)
    # or max_bytes (entries of large events).
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    rows = size = 0
    while rows < max_rows and size < max_bytes:
        fresh = client.xreadgroup(LANDING_GROUP, consumer, {stream: ">"}, count=count)
        got = fresh[0][1] if fresh else []
        entries.extend(got)
        rows += sum(int(fields.get(ROW_COUNT_FIELD, 1)) for _, fields in got)
        size += sum(_entry_bytes(fields) for _, fields in got)
        if len(got) < count:
            break
    return entries, False


def drain(
    client: redis.Redis,
    warehouse: Client,
    consumer: str,
    batch_size: int = 20_000,
    max_seconds: float = 5.0,
    claim_idle_ms: int = 10_000,
    stream: str = LANDING_STREAM,
    max_bytes: int = MAX_INSERT_BYTES,
) -> DrainResult:
    """Land batches of about batch_size rows while full batches are waiting, for at most
    max_seconds. A batch is also bounded by max_bytes, read and inserted: large events
    must not make an insert the warehouse refuses (it would be retried forever) nor hold
    gigabytes in the worker.

    A batch smaller than batch_size ends the drain even if more rows arrived meanwhile: they
    wait for the next drain (the worker runs one every 0.5 s), so that under steady load each
    insert carries half a second of events. Draining them at once meant an insert of the
    ~100 rows that arrived during the previous insert, back to back, and per row the warehouse
    spent about 3 times what it spends on inserts of a few thousand rows.

    The warehouse's cost per insert (a part to write, then to merge) is large: landing 2 KB
    events in inserts of 1,500 rows took it ~69 µs of CPU per row with the merges, of 5,000
    rows ~29 µs, of 15,000 rows ~20 µs. Hence batches of up to 20,000 rows (about 40 MB of
    such events) when a backlog or a heavy load brings that many.

    A warehouse error propagates with the batch still pending, so the caller can retry it.
    """
    ensure_group(client, stream)
    result = DrainResult()
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        entries, retry = _next_entries(client, stream, consumer, batch_size, max_bytes,
                                       claim_idle_ms)
        if not entries:
            break
        rows = _rows(entries)
        parts = _inserts(rows, max_bytes)
        with insert_in_flight(client, consumer):
            # Entries queued before they were bounded by bytes may still hold more than
            # max_bytes: their rows go in several inserts, all before the entries are
            # acknowledged.
            for part in parts:
                warehouse.insert("raw_events", [*_columns(part), [int(retry)] * len(part),
                                                [row.clock_drift_ms for row in part]],
                                 column_names=[*COLUMNS, LANDING_RETRY, CLOCK_DRIFT_MS],
                                 column_oriented=True)
        ids = [entry_id for entry_id, _ in entries]
        pipe = client.pipeline(transaction=True)
        pipe.xack(stream, LANDING_GROUP, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
        result.batches += 1
        result.rows += len(rows)
        oldest = min(row.received_at for row in rows)
        if result.oldest_received_at is None or oldest < result.oldest_received_at:
            result.oldest_received_at = oldest
        if len(rows) < batch_size and len(parts) == 1:
            break
    return result


def backlog(client: redis.Redis) -> int:
    """Stream entries accepted but not yet landed (delivered or not); an entry holds the
    accepted events of one request, up to ROWS_PER_ENTRY."""
    return int(client.xlen(LANDING_STREAM))
