"""The Dagster UI that `pulsetrace up` starts shows the processing assets and the runs the
runner made: what a user opens to see what the pipeline did."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import DagsterInstance

from cli.stack import dagster_ui_service, prepare_dagster_home, processing_service, start_service
from core.embedded.process import ManagedProcess, free_port
from core.settings import Settings
from tests.ingest.test_bad_input import post
from tests.orchestration.test_processing import issues_of, wait_for
from tests.stack import IngestStack


@pytest.fixture(scope="module")
def dagster_ui(ingest_stack: IngestStack) -> Iterator[tuple[Settings, str]]:
    settings = dataclasses.replace(ingest_stack.settings, dagster_port=free_port())
    started: list[ManagedProcess] = []
    try:
        # As `up` does: the UI first (it creates the Dagster store), then the runner.
        started.append(start_service(dagster_ui_service(settings), settings))
        started.append(start_service(processing_service(settings), settings))
        yield settings, f"http://{settings.host}:{settings.dagster_port}"
    finally:
        for process in reversed(started):
            process.stop()


def graphql(url: str, query: str) -> dict[str, Any]:
    response = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_the_ui_shows_the_assets_and_the_runners_runs(
    ingest_stack: IngestStack, dagster_ui: tuple[Settings, str]
) -> None:
    settings, url = dagster_ui
    assert requests.get(url, timeout=30).status_code == 200  # the web app itself

    keys = {"/".join(node["assetKey"]["path"])
            for node in graphql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"]}
    assert {"events", "transactions", "feedback", "issues"} <= keys

    marker = uuid.uuid4().hex
    event = {"event_id": uuid.uuid4().hex, "level": "error", "platform": "python",
             "exception": {"values": [{"type": "DagsterUiProbe", "value": marker}]}}
    assert post(ingest_stack, "store", json.dumps(event).encode()).status_code == 200
    wait_for(lambda: any(marker in i.title for i in issues_of(settings,
                                                             ingest_stack.project.project_id)))

    def successful_runs() -> list[dict[str, Any]]:
        runs = graphql(url, '{ runsOrError(filter: {pipelineName: "process_raw_events",'
                            ' statuses: [SUCCESS]}, limit: 5) { __typename'
                            ' ... on Runs { results { runId status } } } }')["runsOrError"]
        assert runs["__typename"] == "Runs", runs
        return runs["results"]

    runs = wait_for(successful_runs)
    # A run's page lists what happened in it (kept in the one event-log database).
    run_id = runs[0]["runId"]
    events = graphql(url, f'{{ logsForRun(runId: "{run_id}") {{ __typename'
                          ' ... on EventConnection { events { __typename } } } }')["logsForRun"]
    kinds = {event["__typename"] for event in events["events"]}
    assert {"RunStartEvent", "ExecutionStepSuccessEvent", "MaterializationEvent",
            "RunSuccessEvent"} <= kinds, kinds
    materialized = graphql(url, '{ assetOrError(assetKey: {path: ["issues"]}) { __typename'
                                ' ... on Asset { assetMaterializations(limit: 1) { runId } } } }')
    assert materialized["assetOrError"]["assetMaterializations"], materialized


def test_runs_leave_the_processs_logging_alone(tmp_path: Path) -> None:
    """The runner runs batches and marts builds in two threads. Dagster reconfigures Python
    logging at the start of every run when its instance has any setting, which deadlocked the
    two threads on logging's locks; the instance `up` prepares configures storage only."""
    settings = Settings(data_dir=tmp_path)
    prepare_dagster_home(settings)
    probe = logging.StreamHandler(io.StringIO())
    probe.set_name("pulsetrace-probe")
    logging.getLogger("pulsetrace-probe").addHandler(probe)
    try:
        instance = DagsterInstance.from_config(str(settings.dagster_home))
        assert len(instance.get_handlers()) == 1  # only the event log's own handler
        # logging.config.dictConfig would have dropped every named handler of the process.
        assert "pulsetrace-probe" in logging._handlers  # noqa: SLF001
    finally:
        logging.getLogger("pulsetrace-probe").removeHandler(probe)
