"""dbt-clickhouse (`driver: http`) builds a small project against the warehouse server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clickhouse_connect.driver.client import Client

from tests.warehouse.conftest import Warehouse

PROJECT = Path(__file__).parent / "dbt_smoke"
VENV_BIN = Path(sys.executable).parent


def dbt_build(project_dir: Path, profiles_dir: Path, work_dir: Path) -> None:
    # Without the dbt variables another suite's in-process dbt run left in this process
    # (DBT_TARGET would pick a target this project's profile does not have).
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith(("DBT_", "PULSETRACE_DBT_"))}
    env = {
        **inherited,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # Keep dbt's artifacts out of the repository.
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
    }
    result = subprocess.run(
        [str(VENV_BIN / "dbt"), "build", "--project-dir", str(project_dir),
         "--profiles-dir", str(profiles_dir)],
        env=env, cwd=work_dir, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_dbt_build_twice(warehouse: Warehouse, client: Client, tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text(
        f"""
warehouse_smoke:
  target: dev
  outputs:
    dev:
      type: clickhouse
      driver: http
      host: 127.0.0.1
      port: {warehouse.port}
      user: default
      password: ""
      schema: dbt_smoke
      threads: 2
"""
    )
    client.command("DROP DATABASE IF EXISTS dbt_smoke")
    client.command("DROP TABLE IF EXISTS smoke_raw_events")
    client.command(
        """CREATE TABLE smoke_raw_events (
            id UInt64, project_id UInt32, level String, message String, created_at DateTime
        ) ENGINE = MergeTree ORDER BY id"""
    )

    def add_events(first: int, count: int) -> None:
        levels = ("error", "warning", "info")
        rows = [(i, i % 2, levels[i % 3], f"event {i}", 1_700_000_000 + i)
                for i in range(first, first + count)]  # fmt: skip
        client.insert("smoke_raw_events", rows)

    add_events(1, 30)
    dbt_build(PROJECT, tmp_path, tmp_path)
    assert client.command("SELECT count() FROM dbt_smoke.stg_events") == 30
    assert client.command("SELECT sum(events) FROM dbt_smoke.events_by_level") == 30
    assert client.command("SELECT count() FROM dbt_smoke.events_by_level WHERE severity = 3") == 1
    assert client.command("SELECT count() FROM dbt_smoke.events_incremental") == 30
    assert client.command("SELECT count() FROM dbt_smoke.smoke_levels") == 3
    assert client.command("SELECT sum(events) FROM dbt_smoke.events_per_project_mv") == 30

    add_events(31, 12)  # flows into the materialized view's table as it lands
    assert client.command("SELECT sum(events) FROM dbt_smoke.events_per_project_mv") == 42
    dbt_build(PROJECT, tmp_path, tmp_path)  # the incremental model now takes the new rows only
    assert client.command("SELECT count() FROM dbt_smoke.events_incremental") == 42
    assert client.command("SELECT uniqExact(id) FROM dbt_smoke.events_incremental") == 42
    assert client.command("SELECT sum(events) FROM dbt_smoke.events_by_level") == 42
    assert client.command("SELECT sum(events) FROM dbt_smoke.events_per_project_mv") == 42
