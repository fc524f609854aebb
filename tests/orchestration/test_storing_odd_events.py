"""Events the pipeline gets through must also store: one row that PostgreSQL or ClickHouse
refuses fails its whole window, which the runner retries forever while every project's events
wait behind it. Each case lands raw rows as the landing worker does and runs the real window
(real PostgreSQL, real chDB) through storing."""

from __future__ import annotations

import json
import random
import string
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select

from core import db
from core.models import Issue
from dashboards.api.issues import EVENT_DETAIL, event_json
from orchestration.processing import _existing_issues
from tests.orchestration.windows import Stores, raw_row, run_window
from tests.stack import new_project


def stored(stores: Stores, table: str, event_id: str, columns: str) -> tuple[Any, ...]:
    key = "feedback_id" if table == "feedback" else "event_id"
    [row] = stores.warehouse.query(
        f"SELECT {columns} FROM {table} FINAL WHERE {key} = {{id:UUID}}",
        parameters={"id": event_id}).result_rows
    return tuple(row)


def issue_of(stores: Stores, event_id: str) -> Issue:
    [issue_id] = stored(stores, "events", event_id, "issue_id")
    with db.system_session(stores.engine) as session:
        issue = session.get(Issue, issue_id)
    assert issue is not None
    return issue


NOW = datetime.now(UTC).timestamp()
FIRST_TIME, END_TIME = datetime(1900, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC)


def error(**fields: Any) -> str:
    """An error event of its own issue (letters only: grouping replaces hex and numbers)."""
    word = "".join(random.choices(string.ascii_lowercase, k=16))
    return json.dumps({"timestamp": NOW, "level": "error", "platform": "python",
                       "message": f"odd one {word}", **fields})


def transaction(**fields: Any) -> str:
    return json.dumps({"type": "transaction", "transaction": "/cart", "timestamp": NOW,
                       "start_timestamp": NOW - 1, "contexts": {"trace": {
                           "trace_id": "a" * 32, "span_id": "b" * 16, "op": "http.server"}},
                       **fields})


# Times ingest accepts (RFC 3339 with an offset, any number) that no store holds: a UTC offset
# takes year 1 to year 0 and 9999 to 10000, no Python datetime (storing the issue raised
# ValueError); ClickHouse's DateTime64 holds 1900 to 2299, and read garbage days of the rest.
TIMES_OUT_OF_RANGE = {
    "year 1 east of UTC": "0001-01-01T00:00:00+05:00",
    "year 9999 west of UTC": "9999-12-31T23:59:59-05:00",
    "year 9999": "9999-12-31T23:59:59Z",
    "before 1900": "1899-12-31T23:59:59Z",
    "seconds in 2603": 2e10,
    "seconds in 1874": -3e9,
}


@pytest.mark.parametrize("name", TIMES_OUT_OF_RANGE)
def test_a_time_no_store_holds_reads_as_the_receive_time(stores: Stores, name: str) -> None:
    moment = TIMES_OUT_OF_RANGE[name]
    rows = [raw_row(stores, error(timestamp=moment)),
            raw_row(stores, transaction(timestamp=moment, start_timestamp=moment,
                                        spans=[{"op": "db", "start_timestamp": moment,
                                                "timestamp": moment}]), "transaction"),
            raw_row(stores, json.dumps({"timestamp": moment, "contexts": {
                "feedback": {"message": "the cart is empty"}}}), "feedback")]
    result = run_window(stores, rows)

    assert (result.events, result.transactions, result.feedback) == (1, 1, 1)
    event_id, transaction_id, feedback_id = (row["event_id"] for row in rows)
    received = rows[0]["received_at"].replace(microsecond=rows[0]["received_at"].microsecond
                                              // 1000 * 1000)
    [timestamp] = stored(stores, "events", event_id, "timestamp")
    assert timestamp.replace(tzinfo=UTC) == received
    issue = issue_of(stores, event_id)
    assert issue.first_seen == issue.last_seen == received
    start, end, spans = stored(stores, "transactions", transaction_id,
                               "start_timestamp, timestamp, spans.start_offset_ms")
    assert FIRST_TIME <= start.replace(tzinfo=UTC) <= end.replace(tzinfo=UTC) < END_TIME
    assert spans == [0.0]
    [feedback_time] = stored(stores, "feedback", feedback_id, "timestamp")
    assert FIRST_TIME <= feedback_time.replace(tzinfo=UTC) < END_TIME


def test_a_clock_a_year_ahead_does_not_pin_its_issues_last_seen(stores: Stores) -> None:
    """Sentry's rule (pipelines.processed.corrected_times): the event time of a device set
    a year ahead would stay its issue's last seen, and the title stop following new events."""
    message = json.loads(error())
    ahead = raw_row(stores, json.dumps({**message, "timestamp": NOW + 365 * 86_400}))
    run_window(stores, [ahead])
    received = ahead["received_at"].replace(microsecond=ahead["received_at"].microsecond
                                            // 1000 * 1000)
    assert issue_of(stores, ahead["event_id"]).last_seen == received
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    right = raw_row(stores, json.dumps({**message, "timestamp": later.timestamp()}))
    run_window(stores, [right])
    issue = issue_of(stores, right["event_id"])
    assert issue.id == issue_of(stores, ahead["event_id"]).id
    assert (issue.first_seen, issue.last_seen, issue.times_seen) == (received, later, 2)
    # The event's page says what was done with the time its SDK sent.
    [row] = list(stores.warehouse.query(
        f"SELECT {EVENT_DETAIL} FROM events FINAL WHERE event_id = {{id:UUID}}",
        parameters={"id": ahead["event_id"]}).named_results())
    [drift] = event_json(row)["errors"]
    assert drift["type"] == "future_timestamp" and "clock was ahead" in drift["message"]
    assert drift["data"]["value"].startswith(str(datetime.fromtimestamp(NOW, UTC).year + 1))


def test_invalid_utf8_in_a_raw_row_is_stored_with_replacement_characters(
    stores: Stores,
) -> None:
    # Ingest lands valid UTF-8 only; a row landed some other way (an older ingest, a direct
    # insert) was set aside, its bytes having made a pipeline stage panic.
    rows = [raw_row(stores, b'{"timestamp":%d,"message":"cart \xff\xfe empty","release":'
                    b'"shop@1.0\xc0"}' % NOW, sdk_name=b"sentry.\xffpython",
                    user_agent=b"Mozilla/5.0 \xe9"),
            raw_row(stores, b'{"type":"transaction","transaction":"/caf\xe9","timestamp":%d,'
                    b'"start_timestamp":%d}' % (NOW, NOW - 1), "transaction",
                    sdk_name=b"sentry.python", user_agent=b"")]
    result = run_window(stores, rows)

    assert (result.events, result.transactions, result.dead_lettered) == (1, 1, 0)
    assert stored(stores, "events", rows[0]["event_id"], "message, release, sdk_name") == (
        "cart \ufffd empty", "shop@1.0\ufffd", "sentry.\ufffdpython")
    assert issue_of(stores, rows[0]["event_id"]).title == "cart \ufffd empty"
    assert stored(stores, "transactions", rows[1]["event_id"], "transaction_name") == (
        "/caf\ufffd",)


def test_the_issues_of_a_window_of_33_000_are_looked_up_in_one_statement(
    stores: Stores,
) -> None:
    # A window of 33,000 issues (a backlog of unique messages, a reprocessing) asked for
    # 66,000 (project, fingerprint) parameters: one statement takes at most 65,535.
    rows = [raw_row(stores, error()) for _ in range(2)]
    run_window(stores, rows)
    known = {issue_of(stores, row["event_id"]).fingerprint_hash for row in rows}
    fingerprints = [*known, *(uuid.uuid4().hex for _ in range(33_000))]
    summary = pl.DataFrame({
        "project_id": pl.Series([stores.project.project_id] * len(fingerprints),
                                dtype=pl.UInt64),
        "fingerprint_hash": fingerprints})
    with db.system_session(stores.engine) as session:
        found = _existing_issues(session, summary)
    assert set(found["fingerprint_hash"]) == known


def test_a_window_of_thousands_of_new_issues_stores_each_counted(stores: Stores) -> None:
    # Inserted many to a statement (NEW_ISSUES_PER_STATEMENT), some of them already made by
    # another runner meanwhile: those add the window's events to their count.
    stores = replace(stores, project=new_project(stores.settings))  # its issues alone
    messages = [error() for _ in range(4_500)]
    first = [raw_row(stores, message) for message in messages[:3]]
    run_window(stores, first)
    rows = [raw_row(stores, message) for message in messages]
    result = run_window(stores, rows)
    assert result.events == 4_500 and result.new_issues == 4_497
    with db.system_session(stores.engine) as session:
        counts = dict(session.execute(select(Issue.title, Issue.times_seen).where(
            Issue.project_id == stores.project.project_id)).all())
    assert len(counts) == 4_500
    titles = [json.loads(message)["message"] for message in messages]
    assert [counts[title] for title in titles] == [2] * 3 + [1] * 4_497
    assert issue_of(stores, rows[0]["event_id"]).id == issue_of(stores, first[0]["event_id"]).id


MB = "payment failed " * 70_000  # about 1 MB


def test_a_megabyte_message_makes_a_short_title_and_groups_as_before(stores: Stores) -> None:
    # Alike in their first 1,000 characters, far beyond the title: grouping reads more.
    rows = [raw_row(stores, error(message=f"{MB[:1_000]}{middle}{MB}"))
            for middle in ("cart", "cart", "order")]
    rows.append(raw_row(stores, error(message=None, transaction=MB, exception={"values": [
        {"type": "CardError", "value": MB, "stacktrace": {"frames": [
            {"function": MB, "module": "shop.payments", "in_app": True}]}}]})))
    result = run_window(stores, rows)

    assert result.events == 4
    issues = [issue_of(stores, row["event_id"]) for row in rows]
    assert issues[0].id == issues[1].id != issues[2].id
    for issue in issues:
        assert len(issue.title) <= 200 and len(issue.culprit or "") <= 200
    assert issues[0].title.startswith("payment failed") and issues[0].title.endswith("…")
    assert issues[3].title.startswith("CardError: payment failed")


# Values of every kind the processed tables and the issues table hold, in the shapes and sizes
# SDKs and apps send: they all store already; this keeps it so.
LONG = "x" * 1_000_000
ODD_VALUES = [
    error(release="r" * 10_000, environment=LONG, dist=LONG, transaction=LONG,
          platform=LONG, level=LONG, fingerprint=[LONG, ""], tags={LONG: LONG, "": "",
                                                                   "a\nb\tc=d": "é"}),
    error(user={"id": 10**30, "email": LONG, "ip_address": LONG, "username": LONG},
          sdk={"name": LONG, "version": LONG}, request={"url": LONG, "method": LONG},
          contexts={"browser": {"name": LONG, "version": LONG}, "os": {"name": LONG},
                    "device": {"model": LONG}}),
    error(message="nul \x00", release="shop\x00", environment="\x00", tags={"k\x00": "\x00"},
          exception={"values": [{"type": "E\x00", "value": "\x00", "stacktrace": {"frames": [
              {"function": "f\x00", "module": "m\x00", "in_app": True}]}}]}),
    error(message="", release="", environment="", transaction="", platform=""),
    error(timestamp=True, user={"id": -(10**30)}, extra={"big": 10**40, "zero": -0.0}),
]
ODD_TRANSACTIONS = [
    transaction(start_timestamp=NOW + 100, transaction=""),
    transaction(measurements={"lcp": {"value": 2**70}, "cls": {"value": -(10**30)},
                              "fcp": {"value": True}, "ttfb": {"value": "1"},
                              "inp": {"value": 1e308}, "": {"value": 1}, LONG: {"value": 1}},
                contexts={"trace": {"trace_id": LONG}, "response": {"status_code": 2**70}}),
    transaction(transaction=LONG, release=LONG, environment=LONG, tags={LONG: LONG},
                spans=[{"op": LONG, "description": LONG, "status": LONG,
                        "start_timestamp": -1e300, "timestamp": 1e300}],
                request={"url": LONG, "method": LONG}, user={"id": LONG}),
]


def test_odd_values_of_every_kind_store(stores: Stores) -> None:
    rows = [raw_row(stores, payload) for payload in ODD_VALUES]
    rows += [raw_row(stores, payload, "transaction") for payload in ODD_TRANSACTIONS]
    rows += [raw_row(stores, json.dumps({"timestamp": NOW, "release": LONG, "contexts": {
        "feedback": {"message": LONG * 5, "name": LONG, "contact_email": LONG, "url": LONG}}}),
        "feedback"),
        raw_row(stores, json.dumps({"name": LONG, "email": LONG, "comments": LONG,
                                    "event_id": "z" * 32}), "user_report")]
    result = run_window(stores, rows)

    assert (result.events, result.transactions, result.feedback, result.dead_lettered) == (
        len(ODD_VALUES), len(ODD_TRANSACTIONS), 2, 0)
