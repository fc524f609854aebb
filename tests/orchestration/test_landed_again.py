"""An event landed again (a landing insert retried after it failed or was cut off, which the
warehouse may have taken all the same) counts once, however its copies sit in raw_events when
its window is processed: both there, merged into one, or only the later copy, landed."""

from __future__ import annotations

from datetime import datetime

import pytest

from core import db
from core.models import Issue
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
    returns how many copies of `row` are left."""
    received = row["received_at"]
    assert isinstance(received, datetime)  # the partition's id is its day, as digits
    stores.warehouse.command(f"OPTIMIZE TABLE raw_events PARTITION ID '{received:%Y%m%d}' FINAL")
    return int(stores.warehouse.command(
        "SELECT count() FROM raw_events WHERE event_id = {id:UUID}",
        parameters={"id": row["event_id"]}))


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
