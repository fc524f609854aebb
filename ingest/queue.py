"""The hand-off from ingest to landing: Redis round trips shared by concurrent requests.

A Lua script, atomically: checks each project key's sliding-window rate limit, drops event ids
seen before (SDK retries), appends the accepted events to the landing stream, and counts them
in the window. The landing worker reads the stream with a consumer group, so an event stays in
Redis until ClickHouse has it.

The window is split into 30 buckets; the count is the sum of the buckets inside the window
ending now, so a burst at a window edge cannot pass twice the limit as a fixed window allows.

Group commit: a request that finds no script call in flight in its process runs one at once
for itself and every request that queued up behind the previous call; requests that arrive
while a call is in flight wait for the next one. A lone request therefore pays one round
trip as before, and under load one call serves several requests. On this machine (a 2-vCPU
VM) each blocking round trip costs 150-250 µs of CPU between client and Redis, far more than
the few commands it carries, so sharing them is what makes single-event requests cheap.

Redis work is per call, not per event, wherever it can be: accepted rows go into stream
entries of up to ROWS_PER_ENTRY rows and about ENTRY_MAX_BYTES (a msgpack array), and seen
event ids live in one set per 10-minute bucket, checked and added with one command per bucket
and project. A request's rows travel as pieces, each already the body of an entry (its rows
concatenated): the script takes a piece whole unless one of its events is dropped (a duplicate,
over the limit), and only then cuts it into rows. Rows sent one argument each cost Redis a
string per row to parse, keep in Lua and concatenate again: a quarter of Redis's CPU in
requests of 100 events.

A piece of COMPRESS_MIN_ROWS rows or more (a batch, not a lone event) travels LZ4-compressed
and becomes an entry of its own, whole: the script cannot cut it, so it names the rows it
dropped (`x`) and the landing worker leaves them out. Redis spent a third of its CPU copying,
allocating and logging (AOF) the bytes of batches, and a warehouse outage fills Redis with
the backlog; the events of a batch share most of their bytes (about 14x smaller in LZ4, at
~1.4 µs of the ingest's CPU per event).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass, field

import lz4.block
import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError
from redis.retry import Retry

LANDING_STREAM = "pulsetrace:landing"
LANDING_GROUP = "landing"
# Stream entry fields: `n`, how many landing rows the entry holds; `b`, those rows as one
# msgpack array (the script writes the array header before the concatenated rows); or `z`,
# that array LZ4-compressed (a block with its size first), less the rows at the (0-based)
# positions listed in `x` ("3,7"; empty when it dropped none).
ROW_COUNT_FIELD, ROWS_FIELD = b"n", b"b"
COMPRESSED_ROWS_FIELD, DROPPED_ROWS_FIELD = b"z", b"x"
COMPRESS_MIN_ROWS = 8
ROWS_PER_ENTRY = 100  # bounds what one entry (and so one read of the landing worker) holds
# An entry takes no more rows once it holds this many bytes (a single larger row, up to the
# per-event limit, has an entry of its own): 100 rows of 1 MiB events would make 100 MiB
# entries, and the landing worker reads 50 entries at a time.
ENTRY_MAX_BYTES = 1024 * 1024
# Accepted event ids are remembered SEEN_BUCKETS buckets of SEEN_BUCKET_SECONDS (10-20 min)
# to drop SDK retries, which come within seconds to minutes; raw_events also collapses
# duplicate ids under FINAL. (It was 24 h: ~36 GB of Redis a day at 3,000 events/s.)
SEEN_BUCKET_SECONDS = 10 * 60
SEEN_BUCKETS = 2
BUCKETS = 30
# One script call takes the waiting requests until they hold this many events.
MAX_EVENTS_PER_CALL = 10_000

# ARGV: window_ms, seen_bucket_s, seen_buckets, rows_per_entry, entry_max_bytes, then per
# request: its limit, its project's seen-set prefix, its event count n, the n event ids (those
# with a row first, then those counted without one), its piece count, then per piece: its row
# count, its rows concatenated and their lengths ("12,40"), or its rows compressed and "z".
# KEYS: the landing stream, then per request its project key's rate-limit hash.
# Returns per request {take, retry_ms, statuses}: the first `take` events passed the limit,
# status 1 = accepted, 2 = seen before (in Redis or earlier in this call).
_SCRIPT = """
local window_ms = tonumber(ARGV[1])
local seen_bucket_s = tonumber(ARGV[2])
local seen_buckets = tonumber(ARGV[3])
local rows_per_entry = tonumber(ARGV[4])
local entry_max_bytes = tonumber(ARGV[5])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bucket_ms = math.max(1, math.floor(window_ms / 30))
local current = math.floor(now_ms / bucket_ms)
local oldest_live = current - 29
local seen_now = math.floor(tonumber(t[1]) / seen_bucket_s)

-- Each rate-limit hash is read once per call: what its live buckets hold, and how much
-- this call has taken on top.
local windows = {}
local function window(key)
  local w = windows[key]
  if w then return w end
  w = {used = 0, taken = 0}
  local stale = {}
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local b = tonumber(fields[i])
    if b < oldest_live then
      stale[#stale + 1] = fields[i]
    else
      w.used = w.used + tonumber(fields[i + 1])
      if w.earliest == nil or b < w.earliest then w.earliest = b end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  windows[key] = w
  return w
end

-- Chunks keep unpack() under Lua's stack limit for 10,000-event batches.
local function chunks(list, size, fn)
  for s = 1, #list, size do
    local part = {}
    for i = s, math.min(#list, s + size - 1) do part[#part + 1] = list[i] end
    fn(s, part)
  end
end

-- 1. The rate limit, request by request in arrival order.
local requests = {}
local projects = {}  -- seen prefix -> every taken event id of that project, and where from
local project_order = {}
local pos = 6
for r = 1, #KEYS - 1 do
  local limit = tonumber(ARGV[pos])
  local prefix = ARGV[pos + 1]
  local n = tonumber(ARGV[pos + 2])
  local first = pos + 3
  local pieces = first + n + 1
  pos = pieces + 3 * tonumber(ARGV[first + n])
  local w = window(KEYS[r + 1])
  local take = math.max(0, math.min(n, limit - w.used - w.taken))
  w.taken = w.taken + take
  local req = {take = take, n = n, statuses = {}, w = w, pieces = pieces, pieces_end = pos}
  requests[r] = req
  local p = projects[prefix]
  if p == nil then
    p = {ids = {}, req = {}, pos = {}}  -- parallel arrays: no table per event
    projects[prefix] = p
    project_order[#project_order + 1] = prefix
  end
  local ids, req_of, pos_of = p.ids, p.req, p.pos
  local statuses = req.statuses
  for i = 1, take do
    statuses[i] = 1
    local j = #ids + 1
    ids[j] = ARGV[first + i - 1]
    req_of[j] = r
    pos_of[j] = i
  end
end

-- 2. Duplicates: seen in an earlier bucket-set, or earlier in this call.
for _, prefix in ipairs(project_order) do
  local p = projects[prefix]
  if #p.ids > 0 then
    local seen = {}
    for k = 0, seen_buckets - 1 do
      chunks(p.ids, 1000, function(s, part)
        local found = redis.call('SMISMEMBER', prefix .. (seen_now - k), unpack(part))
        for i = 1, #found do
          if found[i] == 1 then seen[s + i - 1] = true end
        end
      end)
    end
    local in_call = {}
    local fresh = {}
    local ids, req_of, pos_of = p.ids, p.req, p.pos
    for j = 1, #ids do
      local id = ids[j]
      if seen[j] or in_call[id] then
        requests[req_of[j]].statuses[pos_of[j]] = 2
      else
        in_call[id] = true
        fresh[#fresh + 1] = id
      end
    end
    local current_seen = prefix .. seen_now
    chunks(fresh, 1000, function(_, part) redis.call('SADD', current_seen, unpack(part)) end)
    redis.call('EXPIRE', current_seen, seen_bucket_s * (seen_buckets + 1))
  end
end

-- 3. The accepted rows, piece by piece in arrival order: a piece whose events were all
-- accepted goes whole; of any other, only the accepted rows (cut by their lengths), or, of
-- a compressed one, the whole piece and the positions of the rows to leave out.
local counts, bodies, dropped = {}, {}, {}
for _, req in ipairs(requests) do
  local event = 0  -- events of the request before this piece
  for at = req.pieces, req.pieces_end - 1, 3 do
    local count, body = tonumber(ARGV[at]), ARGV[at + 1]
    local out = {}  -- positions in the piece of the rows left out
    for i = event + 1, event + count do
      if req.statuses[i] ~= 1 then out[#out + 1] = i - event - 1 end
    end
    if ARGV[at + 2] == 'z' then
      if #out < count then
        local k = #counts + 1
        counts[k], bodies[k], dropped[k] = count - #out, body, table.concat(out, ',')
      end
    elseif #out == 0 then
      counts[#counts + 1], bodies[#bodies + 1] = count, body
    else
      local kept, start, i = {}, 1, event
      for length in string.gmatch(ARGV[at + 2], '%d+') do
        i = i + 1
        local stop = start + tonumber(length)
        if req.statuses[i] == 1 then kept[#kept + 1] = string.sub(body, start, stop - 1) end
        start = stop
      end
      if #kept > 0 then counts[#counts + 1], bodies[#bodies + 1] = #kept, table.concat(kept) end
    end
    event = event + count
  end
end

-- 4. Entries of up to rows_per_entry rows and about entry_max_bytes (at least one piece): a
-- msgpack array header, then the pieces' rows as sent; a compressed piece, one entry.
local s = 1
while s <= #bodies do
  if dropped[s] then  -- compressed: an entry of its own
    redis.call('XADD', KEYS[1], '*', 'n', counts[s], 'z', bodies[s], 'x', dropped[s])
    s = s + 1
  else
    local last, count, size = s, counts[s], #bodies[s]
    while last < #bodies and not dropped[last + 1]
          and count + counts[last + 1] <= rows_per_entry
          and size + #bodies[last + 1] <= entry_max_bytes do
      last = last + 1
      count = count + counts[last]
      size = size + #bodies[last]
    end
    local parts = {}
    if count < 16 then
      parts[1] = string.char(0x90 + count)
    else
      parts[1] = string.char(0xdc, math.floor(count / 256), count % 256)
    end
    for j = s, last do parts[#parts + 1] = bodies[j] end
    redis.call('XADD', KEYS[1], '*', 'n', count, 'b', table.concat(parts))
    s = last + 1
  end
end

-- 5. Count what each key took in its current bucket.
for key, w in pairs(windows) do
  if w.taken > 0 then
    redis.call('HINCRBY', key, current, w.taken)
    redis.call('PEXPIRE', key, window_ms + bucket_ms)
  end
end

local out = {}
for r, req in ipairs(requests) do
  local retry_ms = 0
  if req.take < req.n then
    local earliest = req.w.earliest or current
    retry_ms = (earliest + 30) * bucket_ms - now_ms
  end
  out[r] = {req.take, retry_ms, req.statuses}
end
return out
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()

ACCEPTED, DUPLICATE = 1, 2


def bounded_runs(sizes: list[int], max_bytes: int, max_count: int | None = None) -> list[slice]:
    """Consecutive runs of the items whose sizes are given, each of at most max_bytes and
    max_count items, but at least one item (a larger one has a run of its own)."""
    if sum(sizes) <= max_bytes and (max_count is None or len(sizes) <= max_count):
        return [slice(0, len(sizes))] if sizes else []  # the usual case
    runs: list[slice] = []
    start = taken = 0
    for i, size in enumerate(sizes):
        if i > start and (i - start == max_count or taken + size > max_bytes):
            runs.append(slice(start, i))
            start, taken = i, 0
        taken += size
    runs.append(slice(start, len(sizes)))
    return runs


def _pieces(rows: list[bytes]) -> list[list[bytes]]:
    """The rows in pieces that can each be an entry's body as they are."""
    return [rows[run] for run in bounded_runs([len(row) for row in rows], ENTRY_MAX_BYTES,
                                              ROWS_PER_ENTRY)]


def rows_array(rows: list[bytes]) -> bytes:
    """Encoded rows as one msgpack array (at most 65,535 of them)."""
    count = len(rows)
    header = bytes([0x90 + count]) if count < 16 else bytes([0xDC, count >> 8, count & 0xFF])
    return header + b"".join(rows)


def compress_rows(rows: list[bytes]) -> bytes:
    """A compressed piece: the rows' msgpack array as an LZ4 block, its size first."""
    return lz4.block.compress(rows_array(rows), store_size=True)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(frozen=True)
class EnqueueResult:
    statuses: list[int]  # per event, in order: ACCEPTED or DUPLICATE; the rest were limited
    total: int
    retry_after_seconds: int  # > 0 when some events were refused by the rate limit

    @property
    def rate_limited(self) -> int:
        return self.total - len(self.statuses)


@dataclass
class _Request:
    """One request's events, waiting for the script call that carries them."""

    key_id: int
    project_id: int
    limit: int
    events: list[tuple[str, bytes]]
    counted: list[str]  # ids counted against the limit (and dropped if seen) with no row
    result: EnqueueResult | None = None
    error: redis.RedisError | None = None
    done: bool = False
    # Held until the request is answered, or it is its turn to lead the next call: its
    # thread blocks on it, and only a thread that has something to do is woken.
    wakeup: threading.Lock = field(default_factory=_held_lock)

    @property
    def size(self) -> int:
        """How many ids it puts to the rate limit."""
        return len(self.events) + len(self.counted)


class LandingQueue:
    """Runs the script on one connection per process, for every request waiting.

    Why not `client.evalsha(...)`: redis-py's pool path (check out, health bookkeeping, check
    in, command dispatch) cost ~3x the round trip itself on the ingest hot path. A held
    connection with send_command/read_response is just the round trip. Only one call is in
    flight per process at a time (see the module's note on group commit), so one connection
    does. The client is still used for its connection settings and off the hot path.
    """

    def __init__(self, client: redis.Redis, window_seconds: float,
                 stream: str = LANDING_STREAM, read_timeout: float = 3.0) -> None:
        self.client = client
        self.read_timeout = read_timeout
        self.stream = stream
        self.window_ms = max(1, int(window_seconds * 1000))
        self.window_seconds = window_seconds
        self._conn: AbstractConnection | None = None
        self._conn_pid = 0
        self._lock = threading.Lock()  # guards _waiting and _in_flight
        self._waiting: list[_Request] = []
        self._in_flight = False

    def limit_for_window(self, per_minute: int) -> int:
        return math.ceil(per_minute * self.window_seconds / 60)

    def enqueue(
        self, key_id: int, project_id: int, per_minute: int, events: list[tuple[str, bytes]],
        counted: list[str] | None = None,
    ) -> EnqueueResult:
        """events: (event id, encoded landing row) pairs; counted: ids of what takes a place
        in the rate limit but lands no row (files sent without their event), after the events
        in the statuses. Raises redis.RedisError if Redis is down."""
        request = _Request(key_id, project_id, self.limit_for_window(per_minute), events,
                           counted or [])
        with self._lock:
            self._waiting.append(request)
            leads = not self._in_flight
            self._in_flight = True
        if not leads:
            # Woken when a call answered it, or when the call in flight ended and this
            # request is the oldest waiting: then it leads the next call.
            request.wakeup.acquire()
        if not request.done:
            self._lead(request)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _lead(self, leader: _Request) -> None:
        """One script call for the oldest waiting requests (the leader's among them). More
        requests queue up meanwhile; after the call the oldest of them leads the next one,
        and only the threads of the requests it answered are woken. (A Condition's
        notify_all woke every waiting thread each time, a tenth of the ingest's CPU.)"""
        with self._lock:
            batch = self._take_waiting()
        try:
            self._call(batch)
        finally:
            for request in batch:  # only after an unexpected error: none is left waiting
                if not request.done:
                    request.error = redis.RedisError("the landing queue call failed")
                    request.done = True
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._in_flight = following is not None
            if following is not None:
                following.wakeup.release()
            for request in batch:
                if request is not leader:
                    request.wakeup.release()

    def _take_waiting(self) -> list[_Request]:
        """The waiting requests, oldest first, up to MAX_EVENTS_PER_CALL events (at least one
        request); the rest wait for the next call."""
        taken, events = 0, 0
        for request in self._waiting:
            if taken and events + request.size > MAX_EVENTS_PER_CALL:
                break
            taken += 1
            events += request.size
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    def _call(self, batch: list[_Request]) -> None:
        """One script call for the batch; every request in it gets its result or the error."""
        keys: list[str] = [self.stream]
        argv: list[str | bytes | int] = [
            self.window_ms, SEEN_BUCKET_SECONDS, SEEN_BUCKETS, ROWS_PER_ENTRY, ENTRY_MAX_BYTES,
        ]
        for request in batch:
            keys.append(f"pulsetrace:ratelimit:{request.key_id}")
            argv += (request.limit, f"pulsetrace:seen:{request.project_id}:", request.size)
            argv += [event_id for event_id, _ in request.events]
            argv += request.counted  # after the rows' ids: no piece refers to them
            pieces = _pieces([row for _, row in request.events])
            argv.append(len(pieces))
            for rows in pieces:
                if len(rows) >= COMPRESS_MIN_ROWS:
                    argv += (len(rows), compress_rows(rows), "z")
                else:
                    argv += (len(rows), b"".join(rows),
                             ",".join([str(len(row)) for row in rows]))
        try:
            replies = self._run(keys, argv)
        except redis.RedisError as exc:
            for request in batch:
                request.error, request.done = exc, True
            return
        for request, (take, retry_ms, statuses) in zip(batch, replies, strict=True):
            total = request.size
            limited = int(take) < total
            request.result = EnqueueResult(
                statuses=[int(s) for s in statuses],
                total=total,
                retry_after_seconds=max(1, math.ceil(int(retry_ms) / 1000)) if limited else 0,
            )
            request.done = True

    def _connection(self) -> AbstractConnection:
        # The pid check: a connection made before a fork must not be shared with the child.
        if self._conn is None or self._conn_pid != os.getpid():
            pool = self.client.connection_pool
            # No built-in retries with backoff: _run reconnects once, then ingest answers 503
            # and the SDK retries later. The read timeout bounds a call to a Redis that is
            # connected but silent; every request of the process waits on this one call.
            self._conn = pool.connection_class(**{
                **pool.connection_kwargs, "retry": Retry(NoBackoff(), 0),
                "socket_timeout": self.read_timeout,
            })
            self._conn_pid = os.getpid()
        return self._conn

    def _run(self, keys: list[str], args: list[str | bytes | int]) -> list:
        try:
            return self._evalsha(self._connection(), keys, args)
        except (redis.ConnectionError, redis.TimeoutError):
            # A dropped connection (Redis restarted, idle timeout, a half-open one that only
            # times out): reconnect once, so a silent Redis costs two read timeouts. Should
            # the script have run before the reply was lost, the retry finds the event ids
            # seen and answers DUPLICATE, so nothing is enqueued twice.
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
