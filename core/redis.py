"""The Redis client: one connection pool per process (redis-py clients are thread-safe)."""

from __future__ import annotations

import os

import redis

from core.settings import get_settings

_clients: dict[tuple[int, str, float | None], redis.Redis] = {}


def redis_client(url: str | None = None, socket_timeout: float | None = None) -> redis.Redis:
    """socket_timeout: how long a reply may take (None: redis-py's default, 5 s). Blocking
    reads (XREADGROUP BLOCK, Celery) need a client without a shorter one."""
    url = url or get_settings().redis_url
    # A pool made before a fork must not be shared with the child.
    key = (os.getpid(), url, socket_timeout)
    client = _clients.get(key)
    if client is None:
        options = {} if socket_timeout is None else {"socket_timeout": socket_timeout}
        client = _clients[key] = redis.Redis.from_url(url, socket_connect_timeout=2, **options)
    return client


def broker_url(url: str) -> str:
    """The Redis URL as Celery's broker (kombu) spells it: a Unix socket is
    `redis+socket://:password@/path` there, `unix://:password@/path?db=0` in redis-py."""
    if not url.startswith("unix://"):
        return url
    return "redis+socket://" + url.removeprefix("unix://").split("?", 1)[0]
