"""Inserts into ClickHouse `raw_events` in flight, as the landing workers mark them in Redis.

An insert's rows get their landing time when the insert begins, but are seen only once it
ends. While one is in flight, processing must not move its cursor past that time: another
worker's insert, begun later and seen first, would otherwise let the cursor pass the rows of
the slower one, and they would never be processed.

A mark is live while its worker keeps it alive (a key with a short expiry, renewed during the
insert): the mark of a worker killed mid-insert lapses within seconds instead of holding
processing back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import redis

LANDING_INSERTS = "pulsetrace:landing:inserts"  # worker token -> when its insert began (s)
ALIVE_SECONDS = 10  # a mark's keep-alive key expires this long after its last renewal
_RENEW_SECONDS = 3.0


def _alive_key(token: str) -> str:
    return f"{LANDING_INSERTS}:alive:{token}"


@contextmanager
def insert_in_flight(client: redis.Redis, worker: str) -> Iterator[None]:
    """Marks the inserts made inside the block as in flight."""
    token = f"{worker}:{time.monotonic_ns()}"
    pipe = client.pipeline(transaction=True)
    pipe.set(_alive_key(token), 1, ex=ALIVE_SECONDS)
    pipe.zadd(LANDING_INSERTS, {token: time.time()})
    pipe.execute()
    done = threading.Event()

    def renew() -> None:
        while not done.wait(_RENEW_SECONDS):
            # On a Redis error the mark lapses: processing stops waiting for this insert.
            with suppress(redis.RedisError):
                client.expire(_alive_key(token), ALIVE_SECONDS)

    renewer = threading.Thread(target=renew, name="insert-in-flight", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        pipe = client.pipeline(transaction=True)
        pipe.zrem(LANDING_INSERTS, token)
        pipe.delete(_alive_key(token))
        pipe.execute()


def inserts_in_flight_since(client: redis.Redis) -> datetime | None:
    """When the oldest insert into raw_events still in flight began, if one is."""
    marks = client.zrange(LANDING_INSERTS, 0, -1, withscores=True)  # one per worker at most
    if not marks:
        return None
    pipe = client.pipeline(transaction=False)
    for token, _ in marks:
        pipe.exists(_alive_key(token.decode() if isinstance(token, bytes) else token))
    alive = pipe.execute()
    lapsed = [token for (token, _), live in zip(marks, alive, strict=True) if not live]
    if lapsed:
        client.zrem(LANDING_INSERTS, *lapsed)  # workers killed mid-insert
    began = [score for (_, score), live in zip(marks, alive, strict=True) if live]
    return datetime.fromtimestamp(float(min(began)), UTC) if began else None
