"""Inserts into ClickHouse `raw_events` in flight, as the landing workers mark them in Redis.

An insert's rows get their landing time when the insert begins, but are seen only once it
ends. While one is in flight, processing must not move its cursor past that time: another
worker's insert, begun later and seen first, would otherwise let the cursor pass the rows of
the slower one, and they would never be processed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import redis

LANDING_INSERTS = "pulsetrace:landing:inserts"  # worker token -> when its insert began (s)
INSERT_STALE_SECONDS = 300.0  # a mark this old is a worker killed mid-insert: ignored


@contextmanager
def insert_in_flight(client: redis.Redis, worker: str) -> Iterator[None]:
    """Marks the inserts made inside the block as in flight."""
    token = f"{worker}:{time.monotonic_ns()}"
    client.zadd(LANDING_INSERTS, {token: time.time()})
    try:
        yield
    finally:
        client.zrem(LANDING_INSERTS, token)


def inserts_in_flight_since(client: redis.Redis) -> datetime | None:
    """When the oldest insert into raw_events still in flight began, if one is."""
    client.zremrangebyscore(LANDING_INSERTS, "-inf", time.time() - INSERT_STALE_SECONDS)
    oldest = client.zrange(LANDING_INSERTS, 0, 0, withscores=True)
    return datetime.fromtimestamp(float(oldest[0][1]), UTC) if oldest else None
