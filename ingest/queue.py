"""The hand-off from ingest to landing: one Redis round trip per request.

A Lua script, atomically: checks the project key's sliding-window rate limit, drops event ids
seen before (SDK retries), appends the accepted events to the landing stream, and counts them
in the window. The landing worker reads the stream with a consumer group, so an event stays in
Redis until ClickHouse has it.

The window is split into 30 buckets; the count is the sum of the buckets inside the window
ending now, so a burst at a window edge cannot pass twice the limit as a fixed window allows.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError
from redis.retry import Retry

LANDING_STREAM = "pulsetrace:landing"
LANDING_GROUP = "landing"
# How long an accepted event id is remembered to drop SDK retries. SDKs retry within seconds
# to minutes, and raw_events collapses duplicate ids under FINAL anyway, so 15 minutes is
# plenty. (It was 24 h: one key per event, ~36 GB of Redis a day at 3,000 events/s.)
DEDUPE_TTL_SECONDS = 15 * 60
BUCKETS = 30

_SCRIPT = """
local window_ms = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local seen_ttl = ARGV[3]
local seen_prefix = ARGV[4]
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bucket_ms = math.max(1, math.floor(window_ms / 30))
local current = math.floor(now_ms / bucket_ms)
local oldest_live = current - 29
local used = 0
local earliest = nil
local stale = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local b = tonumber(fields[i])
  if b < oldest_live then
    stale[#stale + 1] = fields[i]
  else
    used = used + tonumber(fields[i + 1])
    if earliest == nil or b < earliest then earliest = b end
  end
end
-- Buckets that slid out of the window: one HDEL, and only when there are some (rarely).
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
local n = (#ARGV - 4) / 2
local room = limit - used
local take = math.max(0, math.min(n, room))
local statuses = {}
for i = 1, take do
  local id = ARGV[3 + 2 * i]
  if redis.call('SET', seen_prefix .. id, '1', 'NX', 'EX', seen_ttl) then
    redis.call('XADD', KEYS[2], '*', 'r', ARGV[4 + 2 * i])
    statuses[i] = 1
  else
    statuses[i] = 2
  end
end
if take > 0 then
  redis.call('HINCRBY', KEYS[1], current, take)
  redis.call('PEXPIRE', KEYS[1], window_ms + bucket_ms)
end
local retry_ms = 0
if take < n then
  if earliest == nil then earliest = current end
  retry_ms = (earliest + 30) * bucket_ms - now_ms
end
return {take, retry_ms, statuses}
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()

ACCEPTED, DUPLICATE = 1, 2


@dataclass(frozen=True)
class EnqueueResult:
    statuses: list[int]  # per event, in order: ACCEPTED or DUPLICATE; the rest were limited
    total: int
    retry_after_seconds: int  # > 0 when some events were refused by the rate limit

    @property
    def rate_limited(self) -> int:
        return self.total - len(self.statuses)


class LandingQueue:
    """Runs the script on a connection each thread holds for its lifetime.

    Why not `client.evalsha(...)`: redis-py's pool path (check out, health bookkeeping, check
    in, command dispatch) cost ~3x the round trip itself on the ingest hot path. A held
    connection with send_command/read_response is just the round trip. The client is still
    used for its connection settings and by everything off the hot path.
    """

    def __init__(self, client: redis.Redis, window_seconds: float) -> None:
        self.client = client
        self.window_ms = max(1, int(window_seconds * 1000))
        self.window_seconds = window_seconds
        self._local = threading.local()

    def limit_for_window(self, per_minute: int) -> int:
        return math.ceil(per_minute * self.window_seconds / 60)

    def _connection(self) -> AbstractConnection:
        local = self._local
        # The pid check: a connection made before a fork must not be shared with the child.
        if getattr(local, "pid", None) != os.getpid():
            pool = self.client.connection_pool
            # No built-in retries with backoff: _run reconnects once, then ingest answers 503
            # and the SDK retries later.
            local.conn = pool.connection_class(
                **{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
            )
            local.pid = os.getpid()
        return local.conn

    def _run(self, keys: list[str], args: list[str | bytes | int]) -> list:
        try:
            return self._evalsha(self._connection(), keys, args)
        except (redis.ConnectionError, redis.TimeoutError):
            # A dropped connection (Redis restarted, idle timeout): reconnect once. Should the
            # script have run before the reply was lost, the retry finds the event ids seen
            # and answers DUPLICATE, so nothing is enqueued twice.
            conn = self._connection()
            conn.disconnect()
            try:
                return self._evalsha(conn, keys, args)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                raise

    @staticmethod
    def _evalsha(conn: AbstractConnection, keys: list[str], args: list[str | bytes | int]) -> list:
        conn.send_command("EVALSHA", _SCRIPT_SHA, len(keys), *keys, *args)
        try:
            return conn.read_response()
        except NoScriptError:  # first use, or Redis restarted: EVAL also caches the script
            conn.send_command("EVAL", _SCRIPT, len(keys), *keys, *args)
            return conn.read_response()

    def enqueue(
        self, key_id: int, project_id: int, per_minute: int, events: list[tuple[str, bytes]]
    ) -> EnqueueResult:
        """events: (event id, encoded landing row) pairs. Raises redis.RedisError if down."""
        argv: list[str | bytes | int] = [
            self.window_ms,
            self.limit_for_window(per_minute),
            DEDUPE_TTL_SECONDS,
            f"pulsetrace:seen:{project_id}:",
        ]
        for event_id, row in events:
            argv.append(event_id)
            argv.append(row)
        take, retry_ms, statuses = self._run(
            [f"pulsetrace:ratelimit:{key_id}", LANDING_STREAM], argv
        )
        limited = int(take) < len(events)
        return EnqueueResult(
            statuses=[int(s) for s in statuses],
            total=len(events),
            retry_after_seconds=max(1, math.ceil(int(retry_ms) / 1000)) if limited else 0,
        )
