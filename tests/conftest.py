"""Session-wide real services for the test suite: PostgreSQL and Redis, started the way
`pulsetrace up` starts them (core.embedded), in a temporary data dir on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.stack import start_service
from core.embedded import postgres as embedded_postgres
from core.embedded import redis as embedded_redis
from core.embedded import warehouse_service
from core.embedded.process import free_port
from core.settings import Settings
from core.warehouse import migrate


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
    os.environ["INGEST_PORT"] = str(free_port())
    # Short enough for tests to watch a sliding window and a key revocation take effect.
    os.environ["INGEST_RATE_LIMIT_WINDOW_SECONDS"] = "3"
    os.environ["INGEST_KEY_CACHE_SECONDS"] = "1"
    try:
        return Settings.from_env(data_dir)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def postgres_url(stack_settings: Settings) -> Iterator[str]:
    """A real PostgreSQL server for the session; yields its SQLAlchemy URL."""
    process = start_service(embedded_postgres.service(stack_settings), stack_settings)
    try:
        yield stack_settings.database_url
    finally:
        process.stop()


@pytest.fixture(scope="session")
def warehouse_url(stack_settings: Settings) -> Iterator[str]:
    """The chDB warehouse process for the session, migrated; yields CLICKHOUSE_URL."""
    process = start_service(warehouse_service.service(stack_settings), stack_settings)
    try:
        migrate(stack_settings.clickhouse_url)
        yield stack_settings.clickhouse_url
    finally:
        process.stop()


@pytest.fixture(scope="session")
def redis_url(stack_settings: Settings) -> Iterator[str]:
    """A real Redis server for the session; yields its URL."""
    process = start_service(embedded_redis.service(stack_settings), stack_settings)
    try:
        yield stack_settings.redis_url
    finally:
        process.stop()


# The running write path (ingest + landing worker) and its helpers, for every suite.
from tests.stack import fresh_project, ingest_stack, set_key  # noqa: E402, F401
