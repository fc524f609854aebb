"""One event of a shape nobody foresaw must not fail the batch it is in: a failed batch is
retried forever, and every other event of every project waits behind it. Ingest refuses most
of these shapes, but raw events can land some other way (an older ingest, a direct insert)
and are reprocessed as they are."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.batch import process_raw_events
from pipelines.scrubbing import ScrubConfig
from pipelines.symbolication import SourceMapCache
from tests.pipelines.grouping_set import raw_events_frame
from tests.pipelines.test_symbolication import DictSourceMaps

CARD = "4111 1111 1111 1111"


def event(**fields: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "timestamp": 1_790_000_000.0, "level": "error",
            **fields}


def nested(levels: int) -> str:
    """An event's JSON with a card number `levels` arrays deep (too deep to build in Python)."""
    return (f'{{"event_id":"{uuid.uuid4().hex}","timestamp":1790000000.0,"message":"card {CARD}",'
            f'"extra":{{"a":{"[" * levels}"card {CARD}"{"]" * levels}}}}}')


ODD: dict[str, dict[str, Any] | str] = {
    # orjson writes up to 254 levels and reads up to 1,024; Python's json ~990.
    "nested 300 deep": nested(300),
    "nested 1,010 deep": nested(1_010),
    "nested 2,000 deep": nested(2_000),
    "fingerprint a number": event(message="m", fingerprint=1),
    "tags a number": event(message="m", tags=1),
    "exception group ids that are lists": event(exception={"values": [
        {"type": "E", "value": "leaf",
         "mechanism": {"type": "chained", "parent_id": [], "exception_id": []}},
        {"type": "ExceptionGroup", "value": "top",
         "mechanism": {"type": "generic", "is_exception_group": True, "exception_id": []}},
    ]}),
}


@pytest.mark.parametrize("name", ODD)
def test_an_odd_event_does_not_fail_its_batch(name: str) -> None:
    ordinary = event(message=f"ordinary for {CARD}")
    odd = ODD[name]
    frame = raw_events_frame([ordinary, {} if isinstance(odd, str) else odd,
                              ordinary | {"event_id": uuid.uuid4().hex}])
    if isinstance(odd, str):
        frame = frame.with_columns(payload=pl.Series([frame["payload"][0], odd,
                                                      frame["payload"][2]]))
    rows = process_raw_events(frame, {1: ScrubConfig()}, DictSourceMaps(), SourceMapCache())
    ids = rows.events.get_column("event_id").to_list()
    assert ordinary["event_id"] in ids and len(ids) >= 2
    assert CARD not in orjson.dumps(rows.events.to_dicts()).decode()  # scrubbed, or not stored


def test_a_transaction_with_odd_spans_and_tags_still_gets_its_row() -> None:
    transaction = event(type="transaction", transaction="/cart", start_timestamp=1_790_000_000.0,
                        spans=1, tags=1)
    frame = raw_events_frame([transaction]).with_columns(item_type=pl.lit("transaction"))
    rows = process_raw_events(frame, {}, DictSourceMaps(), SourceMapCache())
    assert rows.transactions.get_column("transaction_name").to_list() == ["/cart"]
    assert rows.transactions.get_column("spans.op").to_list() == [[]]


def test_values_apps_hand_their_sdk_are_read_leniently() -> None:
    odd = event(message="m", level="WARNING", tags={"ids": [1, 2], "plan": "pro"},
                fingerprint=["{{ default }}", None], user={"id": 1.5, "username": 42},
                breadcrumbs={"values": [{"data": [1, 2], "message": 404}]})
    levels = [event(message="m", level=level) for level in ("notice", "critical", "Debug", "log")]
    rows = process_raw_events(raw_events_frame([odd, *levels]), {}, DictSourceMaps(),
                              SourceMapCache())
    first = rows.events.row(0, named=True)
    assert first["level"] == "warning"
    assert dict(zip(first["tags.key"], first["tags.value"], strict=True))["ids"] == "[1,2]"
    assert first["user_id"] == "1.5"
    assert rows.events.get_column("level").to_list()[1:] == ["info", "fatal", "debug", "info"]
