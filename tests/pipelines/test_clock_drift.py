"""Times from a device whose clock is far off are corrected as Sentry's Relay corrects them:
moved by the drift ingest measured from the envelope's sent_at; then, more than a minute ahead
of the event's receipt or more than 30 days behind it, read as the receive time. The event
keeps the time its SDK sent in its `errors`, and a transaction moves whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest

from pipelines.processed import (
    CLOCK_DRIFT_COLUMN,
    MAX_SECONDS_AHEAD,
    MAX_SECONDS_BEHIND,
    event_rows,
    feedback_rows,
    transaction_rows,
)
from tests.pipelines.test_processed import RECEIVED, frame

AHEAD, BEHIND = timedelta(seconds=MAX_SECONDS_AHEAD), timedelta(seconds=MAX_SECONDS_BEHIND)
SECOND = timedelta(seconds=1)


def error_at(moment: datetime, **fields: object) -> dict[str, object]:
    return {"timestamp": moment.timestamp(), "message": "Cart stale", **fields}


@pytest.mark.parametrize(("sent", "kind"), [
    (RECEIVED + AHEAD + SECOND, "future_timestamp"),
    (RECEIVED + timedelta(days=365), "future_timestamp"),  # a phone set a year ahead
    (RECEIVED - BEHIND - SECOND, "past_timestamp"),
    (datetime(2000, 1, 1, tzinfo=UTC), "past_timestamp"),  # a clock reset by a flat battery
])
def test_an_event_time_out_of_bounds_reads_as_the_receive_time(sent: datetime,
                                                              kind: str) -> None:
    [row] = event_rows(frame(("event", error_at(sent)))).to_dicts()
    assert row["timestamp"] == RECEIVED
    event = orjson.loads(row["payload"])
    assert event["timestamp"] == sent.timestamp()  # what the SDK sent is kept
    assert event["errors"] == [{"type": kind, "name": "timestamp", "value": sent.isoformat()}]


@pytest.mark.parametrize("sent", [RECEIVED + AHEAD, RECEIVED - BEHIND, RECEIVED - 2 * SECOND])
def test_an_event_time_within_bounds_is_kept_with_its_payload_as_sent(sent: datetime) -> None:
    raw = frame(("event", error_at(sent)))
    [row] = event_rows(raw).to_dicts()
    assert row["timestamp"] == sent
    assert row["payload"] == raw["payload"][0]


def test_only_the_drifted_rows_change_and_errors_the_sdk_sent_stay() -> None:
    sdk_errors = [{"type": "invalid_data", "name": "user.id"}]
    raw = frame(("event", error_at(RECEIVED - SECOND)),
                ("event", error_at(RECEIVED + timedelta(hours=2), errors=sdk_errors)),
                ("event", error_at(RECEIVED - 3 * SECOND)))
    rows = event_rows(raw)
    assert rows["timestamp"].to_list() == [RECEIVED - SECOND, RECEIVED, RECEIVED - 3 * SECOND]
    assert rows["payload"][0] == raw["payload"][0] and rows["payload"][2] == raw["payload"][2]
    assert [e["type"] for e in orjson.loads(rows["payload"][1])["errors"]] == [
        "invalid_data", "future_timestamp"]


def test_a_transaction_ahead_moves_whole() -> None:
    start = RECEIVED + timedelta(days=3)
    transaction = {
        "type": "transaction", "transaction": "/checkout", "start_timestamp": start.timestamp(),
        "timestamp": (start + timedelta(seconds=1.5)).timestamp(),
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}},
        "spans": [{"op": "db", "start_timestamp": (start + timedelta(seconds=0.5)).timestamp(),
                   "timestamp": (start + timedelta(seconds=1)).timestamp()}],
    }
    [row] = transaction_rows(frame(("transaction", transaction))).to_dicts()
    assert row["timestamp"] == RECEIVED
    assert row["start_timestamp"] == RECEIVED - timedelta(seconds=1.5)
    assert row["duration_ms"] == 1500.0
    assert (row["spans.start_offset_ms"], row["spans.duration_ms"]) == ([500.0], [500.0])


def test_feedback_from_a_clock_behind_reads_as_received() -> None:
    widget = {"type": "feedback", "timestamp": (RECEIVED - BEHIND * 2).timestamp(),
              "contexts": {"feedback": {"message": "The pay button does nothing"}}}
    [row] = feedback_rows(frame(("feedback", widget))).to_dicts()
    assert row["timestamp"] == RECEIVED


# --- the drift ingest measured from the envelope's sent_at ----------------------------------

HOURS_BEHIND = timedelta(hours=3)  # a device set to the wrong time zone


def with_drift(raw: pl.DataFrame, *drifts: timedelta) -> pl.DataFrame:
    return raw.with_columns(pl.Series(CLOCK_DRIFT_COLUMN,
                                      [int(d / timedelta(milliseconds=1)) for d in drifts],
                                      dtype=pl.Int64))


def test_an_event_from_a_clock_hours_behind_moves_by_the_measured_drift() -> None:
    sent = RECEIVED - HOURS_BEHIND - 2 * SECOND  # 2 s before it was sent, by the device
    raw = with_drift(frame(("event", error_at(sent)), ("event", error_at(RECEIVED - SECOND))),
                     HOURS_BEHIND, timedelta(0))
    moved, kept = event_rows(raw).to_dicts()
    assert moved["timestamp"] == RECEIVED - 2 * SECOND
    assert orjson.loads(moved["payload"])["errors"] == [{
        "type": "clock_drift", "name": "timestamp", "sdk_time": sent.isoformat(),
        "server_time": (RECEIVED - 2 * SECOND).isoformat()}]
    assert kept["timestamp"] == RECEIVED - SECOND and kept["payload"] == raw["payload"][1]


def test_a_drift_that_leaves_a_time_out_of_bounds_is_then_bounded() -> None:
    sent = RECEIVED + timedelta(days=2)  # ahead by more than the envelope's drift tells
    raw = with_drift(frame(("event", error_at(sent))), -timedelta(days=1))
    [row] = event_rows(raw).to_dicts()
    assert row["timestamp"] == RECEIVED
    assert [e["type"] for e in orjson.loads(row["payload"])["errors"]] == [
        "clock_drift", "future_timestamp"]


def test_transactions_and_feedback_move_by_the_drift_too() -> None:
    start = RECEIVED - HOURS_BEHIND - timedelta(seconds=5)
    transaction = {"type": "transaction", "transaction": "/cart",
                   "start_timestamp": start.timestamp(),
                   "timestamp": (start + timedelta(seconds=2)).timestamp(),
                   "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}}}
    widget = {"type": "feedback", "timestamp": start.timestamp(),
              "contexts": {"feedback": {"message": "slow"}}}
    raw = with_drift(frame(("transaction", transaction), ("feedback", widget)),
                     HOURS_BEHIND, HOURS_BEHIND)
    [moved] = transaction_rows(raw).to_dicts()
    assert moved["start_timestamp"] == start + HOURS_BEHIND
    assert (moved["timestamp"], moved["duration_ms"]) == (
        start + HOURS_BEHIND + timedelta(seconds=2), 2000.0)
    [feedback] = feedback_rows(raw).to_dicts()
    assert feedback["timestamp"] == start + HOURS_BEHIND
