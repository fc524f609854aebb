"""While the stack runs, the runner (orchestration.runner, as `pulsetrace up` starts it) keeps
the marts fresh: events sent to ingest show up in the dbt marts without anyone running dbt,
and the Dagster instance the UI reads records the refresh runs and the dbt assets."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from cli.stack import processing_service, start_service
from core.settings import Settings
from core.warehouse import connect
from tests.ingest.test_bad_input import post
from tests.orchestration.test_processing import wait_for
from tests.stack import IngestStack

MARTS_TIMEOUT = 180.0  # a first full dbt build on a busy 2-core machine


@pytest.fixture(scope="module")
def running(ingest_stack: IngestStack) -> Iterator[tuple[IngestStack, Settings, datetime]]:
    settings = dataclasses.replace(
        ingest_stack.settings, marts_database=f"transforms_runner_{uuid.uuid4().hex[:8]}",
        marts_refresh_seconds=2.0)
    started = datetime.now(UTC)
    process = start_service(processing_service(settings), settings)
    try:
        yield ingest_stack, settings, started
    finally:
        process.stop()
        ingest_stack.warehouse.command(f"DROP DATABASE IF EXISTS {settings.marts_database}")


def send_errors(stack: IngestStack, marker: str, users: list[str]) -> None:
    for user in users:
        event = {"event_id": uuid.uuid4().hex, "level": "error", "platform": "python",
                 "release": "shop@3.1.0", "user": {"id": user},
                 "exception": {"values": [{"type": "StockMismatch", "value": f"run {marker}",
                                           "stacktrace": {"frames": [
                                               {"function": f"reserve_{marker}",
                                                "module": "shop.stock", "in_app": True,
                                                "lineno": 7}]}}]}}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200


def test_the_runner_keeps_the_marts_fresh(
    running: tuple[IngestStack, Settings, datetime],
) -> None:
    stack, settings, started = running
    marker = uuid.uuid4().hex[:8]
    marts = connect(settings.clickhouse_url, database="default")

    def issue_id() -> int:
        found = stack.warehouse.query(
            "SELECT any(issue_id) FROM events FINAL WHERE exception_value = {v:String}"
            " AND issue_id != 0", parameters={"v": f"run {marker}"}).result_rows
        return int(found[0][0]) if found else 0

    def stats() -> tuple[int, int] | None:
        try:
            found = marts.query(
                "SELECT events, users FROM {db:Identifier}.fct_issue_stats"
                " WHERE issue_id = {issue:UInt64}",
                parameters={"db": settings.marts_database, "issue": issue}).result_rows
        except Exception:  # noqa: BLE001 - the first build has not created the table yet
            return None
        return (int(found[0][0]), int(found[0][1])) if found else None

    send_errors(stack, marker, ["u1", "u2", "u1", "u3", "u2"])
    issue = wait_for(issue_id, MARTS_TIMEOUT)
    assert wait_for(lambda: stats() == (5, 3) and stats(), MARTS_TIMEOUT)
    # More events of the same issue: the marts follow without anyone running dbt.
    send_errors(stack, marker, ["u4", "u1", "u5"])
    assert wait_for(lambda: stats() == (8, 5) and stats(), MARTS_TIMEOUT)

    instance = DagsterInstance.from_config(str(settings.dagster_home))
    # The marts show new numbers while the build still runs its data tests; then it ends.
    # (This runner's builds: other tests' runners record theirs in the same instance.)
    runs = wait_for(lambda: (found := [record.dagster_run for record in instance.get_run_records(
        filters=RunsFilter(job_name="refresh_marts", statuses=[DagsterRunStatus.SUCCESS],
                           created_after=started))]) and len(found) >= 2 and found,
        MARTS_TIMEOUT)
    # The dbt models are assets in the UI's instance, materialized by those runs.
    event = instance.get_latest_materialization_event(AssetKey("fct_issue_stats"))
    assert event is not None and event.run_id in {r.run_id for r in runs}
    # One builder process served the builds: loading Dagster and the dbt project again for
    # each build cost more CPU than the build.
    builders = {entry.dagster_event.pid for run in runs[:2]
                for entry in instance.all_logs(run.run_id)
                if entry.dagster_event is not None and entry.dagster_event.pid is not None}
    assert len(builders) == 1, builders
    marts.close()
