"""Inserts into ClickHouse `raw_events` in flight, as the landing workers mark them in Redis.

An insert's rows get their landing time when the insert begins, but are seen only once it
ends. While one is in flight, processing must not move its cursor past that time: another
worker's insert, begun later and seen first, would otherwise let the cursor pass the rows of
the slower one, and they would never be processed.

A mark is live while its worker keeps it alive (a key with a short expiry, renewed during the
insert): the mark of a worker killed mid-insert lapses within seconds instead of holding
processing back.

Marks carry Redis's clock, set atomically with the mark, and `landing_horizon` reads that clock
in the same transaction as the marks: an insert not marked at that moment is marked later, so
it begins, and its rows land, after the time read. Every row landed before the horizon is
therefore visible, without waiting a settling time on every window.
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


# The mark, with Redis's time, and its keep-alive key, in one step.
_MARK_SCRIPT = """
local now = redis.call('TIME')
redis.call('SET', KEYS[2], 1, 'EX', ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d.%06d', now[1], now[2]), ARGV[1])
"""


def _alive_key(token: str) -> str:
    return f"{LANDING_INSERTS}:alive:{token}"


@contextmanager
def insert_in_flight(client: redis.Redis, worker: str) -> Iterator[None]:
    """Marks the inserts made inside the block as in flight."""
    token = f"{worker}:{time.monotonic_ns()}"
    client.eval(_MARK_SCRIPT, 2, LANDING_INSERTS, _alive_key(token), token, ALIVE_SECONDS)
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


def _live_marks(client: redis.Redis) -> tuple[list[float], float]:
    """When the live inserts in flight began, and Redis's time when that was read."""
    pipe = client.pipeline(transaction=True)
    pipe.time()
    pipe.zrange(LANDING_INSERTS, 0, -1, withscores=True)  # one per worker at most
    (seconds, microseconds), marks = pipe.execute()
    now = seconds + microseconds / 1e6
    if not marks:
        return [], now
    pipe = client.pipeline(transaction=False)
    for token, _ in marks:
        pipe.exists(_alive_key(token.decode() if isinstance(token, bytes) else token))
    alive = pipe.execute()
    lapsed = [token for (token, _), live in zip(marks, alive, strict=True) if not live]
    if lapsed:
        client.zrem(LANDING_INSERTS, *lapsed)  # workers killed mid-insert
    return [float(score) for (_, score), live in zip(marks, alive, strict=True) if live], now


def inserts_in_flight_since(client: redis.Redis) -> datetime | None:
    """When the oldest insert into raw_events still in flight began, if one is."""
    began, _ = _live_marks(client)
    return datetime.fromtimestamp(min(began), UTC) if began else None


def landing_horizon(client: redis.Redis) -> datetime:
    """A landing time before which every row of raw_events is visible: the start of the
    oldest insert in flight, or now (Redis's clock) when none is."""
    began, now = _live_marks(client)
    return datetime.fromtimestamp(min([*began, now]), UTC)
