"""Rows for the processed ClickHouse tables, built from scrubbed, fingerprinted events."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import polars as pl

from pipelines.processed import (
    EVENT_SCHEMA,
    FEEDBACK_SCHEMA,
    TRANSACTION_SCHEMA,
    event_rows,
    feedback_rows,
    transaction_rows,
)

RECEIVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SENT_SECONDS = int(RECEIVED.timestamp()) - 7 * 86_400  # a time the SDK's clock gives, in bounds


def frame(*items: tuple[str, dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"organization_id": 1, "project_id": 2, "event_id": f"{i:032x}", "item_type": kind,
          "received_at": RECEIVED, "client_ip": "203.0.113.9", "user_agent": "UA",
          "ua_browser": "Firefox", "ua_browser_version": "140.0", "ua_os": "Windows",
          "ua_os_version": "11", "ua_device": "Other", "sdk_name": "sentry.javascript.browser",
          "sdk_version": "11.12.0", "payload": orjson.dumps(event).decode(),
          "fingerprint_hash": "f" * 32, "title": "TypeError: x", "culprit": "checkout in cart.js"}
         for i, (kind, event) in enumerate(items)],
        schema_overrides={"organization_id": pl.UInt64, "project_id": pl.UInt64,
                          "received_at": pl.Datetime("ms", "UTC")},
    )


def test_event_rows_read_the_event_and_fall_back_to_what_ingest_learned() -> None:
    error = {
        "timestamp": "2026-11-27T09:59:58.5Z", "level": "fatal", "platform": "javascript",
        "release": "shop@1.0.4", "environment": "prod", "tags": [["plan", "pro"]],
        "user": {"email": "[Filtered]", "id": 42},
        "exception": {"values": [{"type": "KeyError", "value": "a"},
                                 {"type": "TypeError", "value": "x",
                                  "mechanism": {"handled": False}}]},
        "breadcrumbs": [{"message": "click"}], "request": {"url": "https://shop/cart"},
        "contexts": {"browser": {"name": "Chrome", "version": "156"}},
        "fingerprint": ["{{ default }}", "checkout"],
    }
    message = {"message": {"formatted": "Cart stale"}, "timestamp": SENT_SECONDS}
    rows = event_rows(frame(("event", error), ("event", message), ("transaction", {})))
    assert rows.schema == pl.Schema(EVENT_SCHEMA)
    first, second = rows.to_dicts()
    assert first["timestamp"] == datetime(2026, 11, 27, 9, 59, 58, 500000, tzinfo=UTC)
    assert (first["level"], first["exception_type"], first["handled"]) == ("fatal", "TypeError",
                                                                           False)
    assert (first["browser_name"], first["browser_version"]) == ("Chrome", "156")  # SDK's own
    assert first["os_name"] == "Windows"  # from the User-Agent
    assert first["user_key"] == "id:42" and first["user_ip"] == "203.0.113.9"
    tags = dict(zip(first["tags.key"], first["tags.value"], strict=True))
    assert tags["plan"] == "pro" and tags["release"] == "shop@1.0.4"
    assert tags["browser"] == "Chrome" and tags["level"] == "fatal"
    assert first["fingerprint"] == ["{{ default }}", "checkout"]
    assert orjson.loads(first["stacktrace"])[1]["type"] == "TypeError"
    assert orjson.loads(first["breadcrumbs"]) == [{"message": "click"}]
    assert first["url"] == "https://shop/cart" and first["issue_id"] == 0
    assert second["message"] == "Cart stale" and second["level"] == "error"
    assert second["timestamp"] == datetime.fromtimestamp(SENT_SECONDS, UTC)


def test_transaction_rows_carry_web_vitals_and_spans() -> None:
    start = SENT_SECONDS + 0.0
    transaction = {
        "type": "transaction", "transaction": "/checkout", "start_timestamp": start,
        "timestamp": start + 1.25, "release": "shop@1.0.4",
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16, "op": "pageload",
                               "status": "ok"}, "response": {"status_code": 200}},
        "request": {"method": "get", "url": "https://shop/checkout"},
        "measurements": {"lcp": {"value": 2400.5, "unit": "millisecond"}, "cls": {"value": 0.02},
                         "bogus": {"value": "x"}},
        "spans": [{"op": "http.client", "description": "GET /api/cart", "status": "ok",
                   "start_timestamp": start + 0.1, "timestamp": start + 0.35}],
    }
    rows = transaction_rows(frame(("transaction", transaction), ("event", {})))
    assert rows.schema == pl.Schema(TRANSACTION_SCHEMA)
    [row] = rows.to_dicts()
    assert row["duration_ms"] == 1250.0
    assert (row["op"], row["status"], row["http_method"], row["http_status_code"]) == (
        "pageload", "ok", "GET", 200)
    assert dict(zip(row["measurements.name"], row["measurements.value"], strict=True)) == {
        "lcp": 2400.5, "cls": 0.02}
    assert row["spans.op"] == ["http.client"]
    assert row["spans.start_offset_ms"][0] == 100.0
    assert abs(row["spans.duration_ms"][0] - 250.0) < 1e-6


def test_feedback_rows_from_the_widget_and_the_crash_report_dialog() -> None:
    widget = {"type": "feedback", "contexts": {"feedback": {
        "message": "The pay button does nothing", "contact_email": "ada@example.com",
        "name": "Ada", "url": "https://shop/cart", "associated_event_id": "c" * 32}}}
    dialog = {"event_id": "d" * 32, "name": "Bob", "email": "bob@example.com",
              "comments": "It crashed when I paid"}
    empty = {"type": "feedback", "contexts": {"feedback": {}}}
    rows = feedback_rows(frame(("feedback", widget), ("user_report", dialog),
                               ("feedback", empty)))
    assert rows.schema == pl.Schema(FEEDBACK_SCHEMA)
    first, second = rows.to_dicts()  # the one without a message is no feedback
    assert (first["message"], first["contact_email"], first["event_id"]) == (
        "The pay button does nothing", "ada@example.com", "c" * 32)
    assert (second["message"], second["name"], second["event_id"]) == (
        "It crashed when I paid", "Bob", "d" * 32)


def test_skipped_rows_leave_every_other_row_with_its_own_ids_and_payload() -> None:
    # Ids, titles and payloads are taken from the frame beside the columns read from each
    # event; rows skipped in between must not shift one against the other.
    events = [("event", {"message": f"m{i}", "release": f"r{i}"}) for i in range(6)]
    raw = frame(*events).with_columns(
        pl.Series("title", [f"title {i}" for i in range(6)]),
        pl.Series("project_id", list(range(6)), dtype=pl.UInt64),
        pl.Series("payload", ['{"message": "m0", "release": "r0"}', "not json", "[1, 2]",
                              '{"message": "m3", "release": "r3"}', "{broken",
                              '{"message": "m5", "release": "r5"}']),
    )
    rows = event_rows(raw)
    assert rows.schema == pl.Schema(EVENT_SCHEMA)
    assert rows.select("project_id", "event_id", "title", "message", "release").rows() == [
        (i, f"{i:032x}", f"title {i}", f"m{i}", f"r{i}") for i in (0, 3, 5)]
    assert rows["payload"].to_list() == [raw["payload"][i] for i in (0, 3, 5)]
    assert rows["received_at"].to_list() == [RECEIVED] * 3
    assert rows["issue_id"].to_list() == [0, 0, 0]

    widget = {"type": "feedback", "contexts": {"feedback": {"message": "hi"}}}
    empty = {"type": "feedback", "contexts": {"feedback": {}}}
    feedback = feedback_rows(frame(("feedback", empty), ("feedback", widget)))
    assert feedback.select("feedback_id", "message").rows() == [(f"{1:032x}", "hi")]


def test_frames_without_such_rows_give_empty_tables_of_the_right_columns() -> None:
    raw = frame(("event", {"message": "m"}))
    assert transaction_rows(raw).schema == pl.Schema(TRANSACTION_SCHEMA)
    assert transaction_rows(raw).height == 0
    assert event_rows(raw.clear()).schema == pl.Schema(EVENT_SCHEMA)
    assert feedback_rows(raw).schema == pl.Schema(FEEDBACK_SCHEMA)
