"""One event of a shape nobody foresaw must not fail the batch it is in: a failed batch is
retried forever, and every other event of every project waits behind it. Ingest refuses most
of these shapes, but raw events can land some other way (an older ingest, a direct insert)
and are reprocessed as they are."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines import processed
from pipelines.batch import process_isolating, process_raw_events
from pipelines.scrubbing import ScrubConfig, scrub_event_json
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


# --- what orjson cannot read ----------------------------------------------------------------
#
# Python's json writes NaN and ±Infinity (and reads 1e400 as Infinity), and a JavaScript string
# cut in the middle of an emoji leaves a lone surrogate, written as a `\ud800` escape. orjson,
# and so every stage after scrubbing, refuses such a payload whole: the event must still be
# stored, grouped as its readable twin is (null for the number, U+FFFD for the surrogate),
# and scrubbed.

PASSWORD = "hunter2-secret"
ODD_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e400")
LONE_SURROGATES = ("\\ud800", "\\udbff", "\\udc00", "\\udfff")  # high and low, as JSON escapes
# Where the odd value sits, beside a string holding a card number and a password: `{v}` is
# the odd value (a number, or a string holding the surrogate), `{s}` that string.
PLACES = {
    "message": '"logentry":{{"message":{s},"params":[{v}]}}',
    "exception": '"exception":{{"values":[{{"type":"ValueError","value":{s},"stacktrace":'
                 '{{"frames":[{{"function":"pay","filename":"pay.py","vars":{{"ratio":{v}}}}}]}}}}]}}',
    "extra": '"extra":{{"ratio":{v},"note":{s}}}',
    "tags": '"tags":{{"ratio":{v},"note":{s}}}',
    "breadcrumbs": '"breadcrumbs":{{"values":[{{"message":{s},"data":{{"ratio":{v}}}}}]}}',
}


def odd_payload(event_id: str, odd: str, place: str, readable: bool = False) -> str:
    """An event's JSON with `odd` in `place`; `readable`: its twin as orjson reads it."""
    if odd in ODD_NUMBERS:
        value, note = "null" if readable else odd, f'"paid with {CARD}, password={PASSWORD}"'
    else:
        escape = "\\ufffd" if readable else odd
        value, note = f'"ratio {escape}"', f'"paid with {CARD}{escape}, password={PASSWORD}"'
    fields = PLACES[place].format(v=value, s=note)
    return f'{{"event_id":"{event_id}","timestamp":1790000000.0,"platform":"python",{fields}}}'


def payload_frame(payloads: list[str]) -> pl.DataFrame:
    frame = raw_events_frame([event() for _ in payloads])
    ids = [json.loads(payload)["event_id"] for payload in payloads]  # orjson refuses some
    return frame.with_columns(event_id=pl.Series(ids), payload=pl.Series(payloads))


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("odd", ODD_NUMBERS + LONE_SURROGATES)
def test_an_event_orjson_cannot_read_is_stored_scrubbed_and_grouped(odd: str,
                                                                     place: str) -> None:
    ordinary, odd_id, twin_id = (uuid.uuid4().hex for _ in range(3))
    frame = payload_frame([odd_payload(ordinary, "NaN", place, readable=True),
                           odd_payload(odd_id, odd, place),
                           odd_payload(twin_id, odd, place, readable=True)])
    rows = process_raw_events(frame, {1: ScrubConfig()}, DictSourceMaps(), SourceMapCache())
    by_id = {row["event_id"]: row for row in rows.events.to_dicts()}
    assert set(by_id) == {ordinary, odd_id, twin_id}
    stored, twin = by_id[odd_id], by_id[twin_id]
    text = orjson.dumps(stored).decode()
    assert CARD not in text and PASSWORD not in text
    assert "[Filtered]" in stored["payload"]
    # Written back readable, the rest of the pipeline reads it as its twin.
    assert orjson.loads(stored["payload"]) == orjson.loads(twin["payload"]) | {
        "event_id": odd_id}
    assert stored["title"] != "<invalid event>"
    assert (stored["fingerprint_hash"], stored["title"], stored["message"],
            stored["exception_value"], stored["tags.value"], stored["breadcrumbs"],
            stored["stacktrace"]) == (
        twin["fingerprint_hash"], twin["title"], twin["message"], twin["exception_value"],
        twin["tags.value"], twin["breadcrumbs"], twin["stacktrace"])


@pytest.mark.parametrize("odd", ["NaN", "-Infinity", "1e400", '"\\ud800"', '"a\\udc00"'])
def test_an_odd_value_alone_no_rule_needs_still_keeps_its_event(odd: str) -> None:
    # Nothing in it for the scrubber to filter: the event is still read and written back.
    event_id = uuid.uuid4().hex
    payload = f'{{"event_id":"{event_id}","message":"boom","extra":{{"ratio":{odd}}}}}'
    rows = process_raw_events(payload_frame([payload]), {}, DictSourceMaps(), SourceMapCache())
    assert rows.events.get_column("event_id").to_list() == [event_id]
    assert rows.events.get_column("message").to_list() == ["boom"]
    ratio = orjson.loads(rows.events.get_column("payload")[0])["extra"]["ratio"]
    assert ratio == (None if odd[0] != '"' else odd[1:-7] + "\ufffd")


def test_what_orjson_refuses_is_written_back_as_null_and_the_replacement_character() -> None:
    payload = ('{"a":NaN,"b":[Infinity,-Infinity,1e400,1.5],"c":"\\ud800x\\udc00",'
               '"\\udfffk":{"d":"\\udbff\\udbff\\udc00"},"e":"\\ud83d\\ude00 \\u00e9"}')
    scrubbed = scrub_event_json(payload)
    assert orjson.loads(scrubbed) == {
        "a": None, "b": [None, None, None, 1.5], "c": "\ufffdx\ufffd",
        "\ufffdk": {"d": "\ufffd\U0010fc00"}, "e": "\U0001f600 \u00e9"}
    assert scrub_event_json(scrubbed) == scrubbed  # scrubbing again changes nothing


@pytest.mark.parametrize("escape", LONE_SURROGATES)
def test_a_lone_surrogate_right_before_a_secret_does_not_hide_it(escape: str) -> None:
    event_id = uuid.uuid4().hex
    payload = (f'{{"event_id":"{event_id}","message":"paid{escape}{CARD}",'
               f'"extra":{{"note":"{escape}password={PASSWORD}","k{escape}":"{escape}{CARD}"}}}}')
    rows = process_raw_events(payload_frame([payload]), {}, DictSourceMaps(), SourceMapCache())
    assert rows.events.get_column("event_id").to_list() == [event_id]
    assert rows.events.get_column("message").to_list() == ["paid\ufffd[Filtered]"]
    assert orjson.loads(rows.events.get_column("payload")[0])["extra"] == {
        "note": "\ufffdpassword=[Filtered]", "k\ufffd": "\ufffd[Filtered]"}


def test_an_event_no_row_can_be_built_for_is_set_aside_not_lost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    build = processed._event_row

    def fails_on_one(row: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        if event.get("message") == "unforeseen":
            raise TypeError("a shape nobody foresaw")
        return build(row, event)

    monkeypatch.setattr(processed, "_event_row", fails_on_one)
    # tags=1 sends the events through the general path, where `_event_row` builds the row.
    ordinary, odd = event(message="m", tags=1), event(message="unforeseen", tags=1)
    rows = process_isolating(raw_events_frame([ordinary, odd]), {}, DictSourceMaps(),
                             SourceMapCache())
    assert rows.events.get_column("event_id").to_list() == [ordinary["event_id"]]
    assert rows.failed.select("event_id", "stage", "error_type").rows() == [
        (odd["event_id"], "rows", "TypeError")]
