"""The bare ingest path, as the ARCHITECTURE.md probe measured it, for bench/ingest.py.

A plain WSGI app (no Flask): gunzip the envelope, parse its JSON lines with orjson, check the
key in memory, ONE Redis round trip (a Lua script: a per-second window count plus an XADD to
a capped scratch stream), answer 200. bench/ingest.py runs it under granian with the ingest's
own flags, at the same moment as the real ingest, so the two figures share the machine's state:
the ratio says how much the product's request path costs beyond the bare minimum.

Environment: REDIS_URL, BENCH_REFERENCE_KEYS (comma-separated public keys that are accepted).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import redis

_SCRIPT = """
local window = KEYS[1] .. ':' .. redis.call('TIME')[1]
local n = redis.call('INCR', window)
if n == 1 then redis.call('EXPIRE', window, 2) end
if n > tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'r', ARGV[2])
return 1
"""
STREAM = "bench:reference"

_client = redis.Redis.from_url(os.environ["REDIS_URL"])
_script = _client.register_script(_SCRIPT)
_keys = frozenset(os.environ.get("BENCH_REFERENCE_KEYS", "").split(","))

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _answer(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    if environ.get("HTTP_CONTENT_ENCODING") == "gzip":
        raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    auth = environ.get("HTTP_X_SENTRY_AUTH", "")
    key = auth.partition("sentry_key=")[2].partition(",")[0].strip()
    if key not in _keys:
        return _answer(start_response, "403 Forbidden", b'{"detail":"bad key"}')
    lines = raw.split(b"\n")
    header = orjson.loads(lines[0])
    orjson.loads(lines[1])
    event = orjson.loads(lines[2])
    if not _script(keys=[f"bench:reference:window:{key}", STREAM], args=[10**9, lines[2]]):
        return _answer(start_response, "429 Too Many Requests", b'{"detail":"limited"}')
    return _answer(start_response, "200 OK", orjson.dumps({"id": event.get("event_id")
                                                           or header.get("event_id")}))
