"""Session-wide real services for the test suite: PostgreSQL and Redis, started the way
`pulsetrace up` starts them (core.embedded), in a temporary data dir on free ports."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.embedded import postgres as embedded_postgres
from core.embedded import redis as embedded_redis
from core.embedded.process import ManagedProcess
from core.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for an embedded stack in a fresh data dir; URLs are not yet served."""
    data_dir: Path = tmp_path_factory.mktemp("pulsetrace-data")
    saved = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "BLOB_URL", "SECRET_KEY"):
        os.environ.pop(name, None)
    os.environ["POSTGRES_PORT"] = str(free_port())
    os.environ["REDIS_PORT"] = str(free_port())
    os.environ["WAREHOUSE_PORT"] = str(free_port())
    try:
        return Settings.from_env(data_dir)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def postgres_url(stack_settings: Settings) -> Iterator[str]:
    """A real PostgreSQL server for the session; yields its SQLAlchemy URL."""
    process = ManagedProcess(embedded_postgres.service(stack_settings))
    process.start()
    try:
        process.wait_healthy()
        yield stack_settings.database_url
    finally:
        process.stop()


@pytest.fixture(scope="session")
def redis_url(stack_settings: Settings) -> Iterator[str]:
    """A real Redis server for the session; yields its URL."""
    process = ManagedProcess(embedded_redis.service(stack_settings))
    process.start()
    try:
        process.wait_healthy()
        yield stack_settings.redis_url
    finally:
        process.stop()
