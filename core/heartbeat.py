"""Liveness of background processes that serve no HTTP: each one says, every few seconds, that
it is still working, and `pulsetrace up`/`status` read that as its health check."""

from __future__ import annotations

import time

import redis

LANDING = "landing"  # the Celery landing worker
PROCESSING = "processing"  # the Dagster micro-batch runner


def _key(name: str) -> str:
    return f"pulsetrace:heartbeat:{name}"


def beat(client: redis.Redis, name: str, ttl_seconds: int = 15) -> None:
    client.set(_key(name), str(time.time()), ex=ttl_seconds)


def alive(client: redis.Redis, name: str) -> bool:
    return bool(client.exists(_key(name)))


def forget(client: redis.Redis, name: str) -> None:
    """Before a start: a beat left by a previous run must not pass for the new process."""
    client.delete(_key(name))
