"""Grouping a batch into issue changes: new issues, issues seen again, regressions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.issues import (
    count_regrouped,
    is_newer_release,
    parse_version,
    plan_issue_changes,
    summarize_batch,
    with_issue_ids,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
EXISTING_SCHEMA = {"id": pl.Int64, "project_id": pl.UInt64, "fingerprint_hash": pl.Utf8,
                   "status": pl.Utf8, "resolved_release": pl.Utf8,
                   "resolved_at": pl.Datetime("us", "UTC")}


def rows(*events: tuple[str, int, str]) -> pl.DataFrame:
    """(fingerprint, minutes after T0, release) per event, in project 7 of org 1."""
    return pl.DataFrame(
        [{"organization_id": 1, "project_id": 7, "fingerprint_hash": fp,
          "timestamp": T0 + timedelta(minutes=m), "title": f"Error {fp}", "culprit": "f in a.js",
          "level": "error", "release": release, "issue_id": 0}
         for fp, m, release in events],
        schema_overrides={"organization_id": pl.UInt64, "project_id": pl.UInt64,
                          "issue_id": pl.UInt64},
    )


def existing(*issues: tuple[int, str, str, str | None, datetime | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"id": i, "project_id": 7, "fingerprint_hash": fp, "status": status,
          "resolved_release": release, "resolved_at": at} for i, fp, status, release, at in issues],
        schema=EXISTING_SCHEMA, orient="row",
    )


@pytest.mark.parametrize(("candidate", "baseline", "newer"), [
    ("shop@1.0.5", "shop@1.0.4", True),
    ("1.10.0", "1.9.9", True),
    ("1.0.4", "1.0.4", False),
    ("1.0.4-rc.1", "1.0.4", False),
    ("1.0.4", "1.0.4-rc.1", True),
    ("v2", "1.9", True),
    ("abc123", "def456", False),  # two git shas, no dates: never reopen on a guess
])
def test_release_order(candidate: str, baseline: str, newer: bool) -> None:
    assert is_newer_release(candidate, baseline) is newer


def test_release_order_falls_back_to_dates() -> None:
    dates = {"abc123": T0, "def456": T0 + timedelta(days=1)}
    assert is_newer_release("def456", "abc123", dates)
    assert not is_newer_release("abc123", "def456", dates)
    assert parse_version("deadbeef") is None


def test_new_issues_get_first_release_and_counts() -> None:
    batch = summarize_batch(rows(("a", 5, "1.0.4"), ("a", 1, "1.0.3"), ("b", 2, "")))
    changes = plan_issue_changes(batch, existing())
    new = {r["fingerprint_hash"]: r for r in changes.new.iter_rows(named=True)}
    assert new["a"]["times_seen"] == 2
    assert new["a"]["first_release"] == "1.0.3"  # the earliest event's: "introduced in"
    assert new["a"]["first_seen"] == T0 + timedelta(minutes=1)
    assert new["a"]["last_seen"] == T0 + timedelta(minutes=5)
    assert new["b"]["first_release"] == ""
    # When the event naming it happened: what a later batch's first release is compared with.
    assert new["a"]["first_release_seen"] == T0 + timedelta(minutes=1)
    assert new["b"]["first_release_seen"] is None
    assert changes.seen.is_empty() and changes.regressed.is_empty()


def test_first_release_is_the_earliest_event_naming_one() -> None:
    # The earliest event has no release (an SDK set up without one): the next one's counts.
    batch = summarize_batch(rows(("a", 1, ""), ("a", 3, "1.0.5"), ("a", 2, "1.0.4")))
    new = plan_issue_changes(batch, existing()).new.row(0, named=True)
    assert new["first_release"] == "1.0.4"
    assert new["first_seen"] == T0 + timedelta(minutes=1)


def test_seen_again_and_regressions() -> None:
    batch = summarize_batch(rows(
        ("open", 1, "1.0.4"),
        ("fixed-in-104", 2, "1.0.4"),          # same release as the fix: not a regression
        ("fixed-in-104-again", 3, "1.0.5"),     # newer than the fix: regression
        ("resolved-now", 10, "1.0.4"),          # resolved at T0+5 min, event after: regression
        ("resolved-before", 4, "1.0.4"),        # event before resolution: no
        ("ignored", 5, "9.9.9"),
    ))
    stored = existing(
        (1, "open", "unresolved", None, None),
        (2, "fixed-in-104", "resolved", "1.0.4", T0),
        (3, "fixed-in-104-again", "resolved", "1.0.4", T0),
        (4, "resolved-now", "resolved", None, T0 + timedelta(minutes=5)),
        (5, "resolved-before", "resolved", None, T0 + timedelta(minutes=5)),
        (6, "ignored", "ignored", None, None),
    )
    changes = plan_issue_changes(batch, stored)
    assert changes.new.is_empty()
    assert sorted(changes.seen["id"].to_list()) == [1, 2, 3, 4, 5, 6]
    assert dict(changes.regressed.select("id", "release").rows()) == {3: "1.0.5", 4: "1.0.4"}


def test_issue_ids_are_filled_by_fingerprint() -> None:
    events = rows(("a", 1, ""), ("b", 2, ""), ("c", 3, ""))
    ids = pl.DataFrame({"project_id": [7, 7], "fingerprint_hash": ["a", "b"], "id": [11, 12]})
    filled = with_issue_ids(events, ids)
    assert filled["issue_id"].to_list() == [11, 12, 0]
    assert filled.columns == events.columns


def test_reprocessed_events_count_in_the_issue_they_are_in_now() -> None:
    events = rows(("a", 1, ""), ("a", 2, ""), ("a", 3, ""), ("a", 4, ""), ("new", 5, ""))
    events = events.with_columns(pl.Series("event_id", ["e1", "e2", "e3", "e4", "e5"]))
    previous = pl.DataFrame(
        {"project_id": [7, 7, 7, 7], "event_id": ["e1", "e2", "e3", "e5"],
         "issue_id": [11, 12, 12, 12]},  # e4 not processed before; e5 was in 12 too
        schema_overrides={"project_id": pl.UInt64, "issue_id": pl.UInt64})
    batch, left = count_regrouped(summarize_batch(events), events,
                                  existing((11, "a", "unresolved", None, None)), previous)
    # e1 stays in a (11): counted already. e2, e3 come from 12; e4 was never counted;
    # e5 is in a new issue.
    assert dict(batch.select("fingerprint_hash", "times_seen").rows()) == {"a": 3, "new": 1}
    assert batch.columns == summarize_batch(events).columns
    assert left.select("project_id", "id", "times_seen").rows() == [(7, 12, 3)]


def test_reprocessing_events_where_they_were_counts_nothing() -> None:
    events = rows(("a", 1, ""), ("a", 2, "")).with_columns(pl.Series("event_id", ["e1", "e2"]))
    previous = pl.DataFrame({"project_id": [7, 7], "event_id": ["e1", "e2"], "issue_id": [11, 11]},
                            schema_overrides={"project_id": pl.UInt64, "issue_id": pl.UInt64})
    batch, left = count_regrouped(summarize_batch(events), events,
                                  existing((11, "a", "unresolved", None, None)), previous)
    assert batch["times_seen"].to_list() == [0]
    assert left.is_empty()
