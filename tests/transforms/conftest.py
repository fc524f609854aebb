"""The transforms tests' warehouse: the session's warehouse process (tests/conftest.py), with a
source database and a marts database of their own per test module, so nothing here touches
what other suites read and write."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from core.settings import Settings
from core.warehouse import connect, database_of, migrate
from orchestration.transforms import run_dbt


@dataclasses.dataclass
class Warehouse:
    settings: Settings  # CLICKHOUSE_URL names the source database; MARTS_DATABASE the marts
    source: Client
    marts: Client

    def dbt(self, *args: str) -> str:
        """Run dbt on the project; its output, asserting it succeeded."""
        done = run_dbt(self.settings, args)
        assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
        return done.stdout


def warehouse_settings(stack_settings: Settings, warehouse_url: str, work: Path,
                       transforms_dir: Path | None = None) -> Settings:
    name = uuid.uuid4().hex[:8]
    base = warehouse_url.rsplit("/", 1)[0]
    changes: dict[str, object] = {
        "external_clickhouse_url": f"{base}/transforms_src_{name}",
        "marts_database": f"transforms_marts_{name}",
        "data_dir": work,
    }
    if transforms_dir is not None:
        changes["transforms_dir"] = str(transforms_dir)
    return dataclasses.replace(stack_settings, **changes)


@pytest.fixture(scope="module")
def warehouse(stack_settings: Settings, warehouse_url: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    settings = warehouse_settings(stack_settings, warehouse_url, tmp_path_factory.mktemp("dbt"))
    migrate(settings.clickhouse_url)
    source = connect(settings.clickhouse_url)
    source.command(f"CREATE DATABASE IF NOT EXISTS {settings.marts_database}")
    marts = connect(settings.clickhouse_url, database=settings.marts_database)
    try:
        yield Warehouse(settings, source, marts)
    finally:
        marts.close()
        source.command(f"DROP DATABASE IF EXISTS {settings.marts_database}")
        source.command(f"DROP DATABASE IF EXISTS {database_of(settings.clickhouse_url)}")
        source.close()
