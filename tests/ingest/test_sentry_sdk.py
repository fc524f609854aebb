"""The real sentry-sdk reports to a running ingest; its events land in raw_events intact."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from tests.stack import IngestStack

APP = Path(__file__).with_name("sentry_app.py")


@pytest.mark.parametrize("compression", ["gzip", "br", "none"])
def test_exceptions_and_messages_land_intact(ingest_stack: IngestStack, compression: str) -> None:
    run_id = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, str(APP), ingest_stack.project.dsn, compression, run_id],
        capture_output=True, text=True, timeout=60, check=True,
    )
    ids = json.loads(done.stdout)
    rows = ingest_stack.landed(
        "project_id = {p:UInt64} AND event_id IN {ids:Array(UUID)}",
        {"p": ingest_stack.project.project_id, "ids": list(ids.values())},
        expected=2,
    )
    assert len(rows) == 2  # each exactly once
    columns = ingest_stack.columns()
    by_id = {row[columns.index("event_id")].hex: dict(zip(columns, row, strict=True))
             for row in rows}

    error = by_id[ids["exception"]]
    assert error["item_type"] == "event"
    assert error["sdk_name"] == "sentry.python"
    assert error["client_ip"] == "127.0.0.1"
    assert error["organization_id"] == ingest_stack.project.org_id
    event = orjson.loads(error["payload"])
    # Chained: the KeyError that caused PaymentDeclined is there too, in order.
    values = event["exception"]["values"]
    assert [v["type"] for v in values] == ["KeyError", "PaymentDeclined"]
    assert values[1]["value"] == "order 1234 could not be charged"
    frames = values[1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "charge"
    assert event["release"] == "shop@1.0.4"
    assert event["environment"] == "production"
    assert event["user"] == {"id": "user-42", "email": "jane@example.com"}
    assert event["tags"]["run"] == run_id and event["tags"]["checkout.step"] == "payment"
    crumbs = event["breadcrumbs"]["values"]
    assert [c.get("category") for c in crumbs] == ["ui.click", "http"]
    assert crumbs[0]["message"] == "clicked Pay"

    message = orjson.loads(by_id[ids["message"]]["payload"])
    assert message["message"] == "inventory low for SKU-9"
    assert message["level"] == "warning"
