"""The Redis client: one connection pool per process (redis-py clients are thread-safe)."""

from __future__ import annotations

import os

import redis

from core.settings import get_settings

_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_client(url: str | None = None) -> redis.Redis:
    url = url or get_settings().redis_url
    key = (os.getpid(), url)  # a pool made before a fork must not be shared with the child
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(url, socket_connect_timeout=2)
    return client
