"""An event landed again counts once: a landing insert retried after it failed or was cut off
(which the warehouse may have taken all the same), however its copies sit in raw_events when
its window is processed (both there, merged into one, only the later copy landed); and an
event an SDK sent again later than ingest remembers event ids."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from core import db
from core.models import Issue
from orchestration.processing import RESENT_AFTER
from tests.orchestration.test_storing_odd_events import error
from tests.orchestration.windows import Stores, land, process, raw_row, run_window


def times_seen(stores: Stores, event_id: str) -> int:
    [[issue_id, copies]] = stores.warehouse.query(
        "SELECT any(issue_id), count() FROM events FINAL WHERE event_id = {id:UUID}",
        parameters={"id": event_id}).result_rows
    assert copies == 1
    with db.system_session(stores.engine) as session:
        issue = session.get(Issue, issue_id)
    assert issue is not None
    return issue.times_seen


def merge_copies(stores: Stores, row: dict[str, object]) -> int:
    """Merges the partition of `row` as ClickHouse does in the background, at some moment;
    returns how many copies of `row` are left. (OPTIMIZE does nothing while a background
    merge holds the parts: it is asked again.)"""
    received = row["received_at"]
    assert isinstance(received, datetime)  # the partition's id is its day, as digits
    left = 0
    for _ in range(50):
        stores.warehouse.command(
            f"OPTIMIZE TABLE raw_events PARTITION ID '{received:%Y%m%d}' FINAL")
        left = int(stores.warehouse.command(
            "SELECT count() FROM raw_events WHERE event_id = {id:UUID}",
            parameters={"id": row["event_id"]}))
        if left == 1:
            break
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("merged", [False, True], ids=["both copies", "merged"])
def test_a_copy_landed_after_its_first_was_processed_counts_once(
    stores: Stores, merged: bool
) -> None:
    row = raw_row(stores, error())
    assert run_window(stores, [row]).raw == 1
    assert times_seen(stores, row["event_id"]) == 1
    window = land(stores, [row], landing_retry=True)
    if merged:
        # One copy is left. It must be the first: the later one alone, marked as landed
        # again but with no copy before its window, read as never processed.
        assert merge_copies(stores, row) == 1
    assert process(stores, window).raw == 0
    assert times_seen(stores, row["event_id"]) == 1


def test_a_copy_landed_again_whose_first_never_landed_counts_once(stores: Stores) -> None:
    row = raw_row(stores, error())
    assert run_window(stores, [row], landing_retry=True).raw == 1
    assert times_seen(stores, row["event_id"]) == 1


def sent_late(stores: Stores, late: timedelta) -> dict[str, object]:
    """An error event of an hour ago received `late` after its time: sent from an SDK's disk."""
    moment = datetime.now(UTC) - timedelta(hours=1)
    row = raw_row(stores, error(timestamp=moment.timestamp()))
    row["received_at"] = moment + late
    return row


def test_an_event_sent_again_after_ingest_forgot_its_id_counts_once(stores: Stores) -> None:
    # The first send got through but its answer was lost; the SDK sends it again at the next
    # start of the app, past ingest's memory of event ids.
    first = sent_late(stores, timedelta(seconds=2))
    assert run_window(stores, [first]).events == 1
    again = {**first, "received_at": datetime.now(UTC)}
    assert again["received_at"] - first["received_at"] > 2 * RESENT_AFTER
    assert run_window(stores, [again]).events == 0
    assert times_seen(stores, first["event_id"]) == 1


def test_a_late_event_whose_window_failed_to_commit_counts_when_run_again(
    stores: Stores,
) -> None:
    """Its events' rows reached ClickHouse, its issues' counts did not reach PostgreSQL: run
    again, those rows are its own, not earlier copies."""
    row = sent_late(stores, timedelta(hours=1))
    window = land(stores, [row])
    assert process(stores, window).events == 1
    with db.system_session(stores.engine) as session, session.begin():  # as if rolled back
        [[issue_id]] = stores.warehouse.query(
            "SELECT issue_id FROM events FINAL WHERE event_id = {id:UUID}",
            parameters={"id": row["event_id"]}).result_rows
        session.execute(delete(Issue).where(Issue.id == issue_id))
    assert process(stores, window).events == 1
    assert times_seen(stores, row["event_id"]) == 1
