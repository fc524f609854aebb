"""A real warehouse server (`python -m core.embedded.warehouse`) for the warehouse tests,
started the way `pulsetrace up` starts it (core.embedded.warehouse_service)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from core.embedded.process import free_port
from core.embedded.warehouse_service import start_warehouse
from core.warehouse import available_migrations, connect

SECRET = "s3cret-pw"
SMALL_BODY_LIMIT = 1024 * 1024


@dataclass
class Warehouse:
    port: int
    data_dir: Path
    password: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def client(self, **kwargs: object) -> Client:
        options: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "database": "pulsetrace",
            "password": self.password,
        }
        options.update(kwargs)
        return clickhouse_connect.get_client(**options)


def database_before(warehouse: Warehouse, version: int) -> tuple[str, Client]:
    """A new database with the migrations before `version` applied (the warehouse as an
    earlier release left it): its URL and a client of it."""
    url = f"{warehouse.url}upgrade_{uuid.uuid4().hex[:12]}"
    bootstrap = connect(url, database="default")
    bootstrap.command(f"CREATE DATABASE `{url.rsplit('/', 1)[1]}`")
    bootstrap.close()
    client = connect(url)
    for migration in available_migrations():
        if migration.version < version:
            for statement in migration.statements():
                client.command(statement)
    return url, client


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """One server for the whole session, no password."""
    data_dir = tmp_path_factory.mktemp("warehouse")
    port = free_port()
    proc = start_warehouse(data_dir, port, log_file=data_dir.parent / "warehouse.log")
    try:
        yield Warehouse(port, data_dir)
    finally:
        assert proc.stop() == 0, "the warehouse did not stop cleanly on SIGTERM"


@pytest.fixture(scope="session")
def secured_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """A server with a password and a 1 MiB body limit."""
    data_dir = tmp_path_factory.mktemp("secured-warehouse")
    port = free_port()
    proc = start_warehouse(
        data_dir,
        port,
        password=SECRET,
        max_body_bytes=SMALL_BODY_LIMIT,
        log_file=data_dir.parent / "secured-warehouse.log",
    )
    try:
        yield Warehouse(port, data_dir, SECRET)
    finally:
        assert proc.stop() == 0


@pytest.fixture
def client(warehouse: Warehouse) -> Iterator[Client]:
    ch = warehouse.client()
    try:
        yield ch
    finally:
        ch.close()


@pytest.fixture
def table(client: Client) -> Iterator[str]:
    """A fresh MergeTree table `(id UInt64, msg String)` in database pulsetrace."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    client.command(f"CREATE TABLE {name} (id UInt64, msg String) ENGINE = MergeTree ORDER BY id")
    try:
        yield name
    finally:
        client.command(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def new_client(warehouse: Warehouse) -> Iterator[Callable[..., Client]]:
    """A factory of clients closed after the test."""
    made: list[Client] = []

    def make(**kwargs: object) -> Client:
        ch = warehouse.client(**kwargs)
        made.append(ch)
        return ch

    try:
        yield make
    finally:
        for ch in made:
            ch.close()
