"""The ARCHITECTURE.md probe's ingest path, rebuilt, for bench/ingest.py: a gauge of how fast
the shared machine runs.

Issue 4's goals were set on this kind of machine beside a throwaway probe: Flask under granian
(2 workers), gunzip a ~1.8 KB envelope, parse its 3 JSON lines with orjson, check the key in
memory, ONE Redis round trip (a Lua sliding-window check that also enqueues), answer 200. It
reached 3,200-3,800 requests/s. This app does exactly that and nothing more (no validation,
enrichment, dedup or metrics). bench/ingest.py runs it under the ingest's own granian command
line between the product's runs: what it reaches then, against what it reached when the goals
were set, says how much faster or slower the machine is running.

Its batch figures (37,000-45,000 events/s) are not rebuilt: ARCHITECTURE.md does not say how it
queued a batch's events, and a rebuild that gave each event an XADD of its own ran at 3-4x that
on a day when this single path ran 1.3-1.6x faster than then; so not the same path.

Environment: REDIS_URL, BENCH_REFERENCE_KEYS (comma-separated public keys that are accepted).
"""

from __future__ import annotations

import os
import zlib

import orjson
import redis
from flask import Flask, Response, request

# A two-bucket sliding window (the previous window's count weighted by how much of it still
# overlaps), then the event enqueued on a capped stream: one round trip per request.
_SCRIPT = """
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local window_ms = tonumber(ARGV[1])
local bucket = math.floor(now_ms / window_ms)
local current = tonumber(redis.call('GET', KEYS[1] .. ':' .. bucket) or '0')
local previous = tonumber(redis.call('GET', KEYS[1] .. ':' .. (bucket - 1)) or '0')
local overlap = 1 - (now_ms % window_ms) / window_ms
if previous * overlap + current + 1 > tonumber(ARGV[2]) then return 0 end
redis.call('INCR', KEYS[1] .. ':' .. bucket)
redis.call('PEXPIRE', KEYS[1] .. ':' .. bucket, 2 * window_ms)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'e', ARGV[3])
return 1
"""
STREAM = "bench:reference"
WINDOW_MS = 60_000
LIMIT = 10**12

_client = redis.Redis.from_url(os.environ["REDIS_URL"])
_script = _client.register_script(_SCRIPT)
_keys = frozenset(os.environ.get("BENCH_REFERENCE_KEYS", "").split(","))

app = Flask(__name__)


def _answer(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@app.post("/api/<int:project_id>/envelope/")
def envelope(project_id: int) -> Response:
    raw = request.get_data()
    if request.headers.get("Content-Encoding") == "gzip":
        raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    auth = request.headers.get("X-Sentry-Auth", "")
    key = auth.partition("sentry_key=")[2].partition(",")[0].strip()
    if key not in _keys:
        return _answer(403, {"detail": "bad key"})
    header_line, item_header, payload = raw.split(b"\n", 2)
    header = orjson.loads(header_line)
    orjson.loads(item_header)
    event = orjson.loads(payload)
    if not _script(keys=[f"bench:reference:window:{key}", STREAM],
                   args=[WINDOW_MS, LIMIT, payload]):
        return _answer(429, {"detail": "limited"})
    return _answer(200, {"id": event.get("event_id") or header.get("event_id")})

