"""The quick path of the row builders (`_Quick`): a typed msgspec decode of what a row reads,
with exception values, breadcrumbs and contexts sliced out of the payload. Every event must
get the row the general path (orjson and `make`) gives it; an event the quick path does not
take must reach the general path. The JSON text columns are the payload's own text: equal
to the general path's when the payload is compact JSON, the same JSON otherwise."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines import processed
from pipelines.processed import event_rows, transaction_rows

RECEIVED = datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC)
RECEIVED_TYPE = pl.Datetime("ms", "UTC")
JSON_COLUMNS = ("stacktrace", "breadcrumbs", "contexts")


def raw_frame(payloads: list[str], item_type: str = "event",
              received: pl.Datetime = RECEIVED_TYPE) -> pl.DataFrame:
    count = len(payloads)
    return pl.DataFrame({
        "organization_id": pl.Series([1] * count, dtype=pl.UInt64),
        "project_id": pl.Series(list(range(count)), dtype=pl.UInt64),
        "event_id": [f"{i:032x}" for i in range(count)],
        "item_type": [item_type] * count,
        "received_at": received_times(count, received),
        "client_ip": ["203.0.113.9", "", None, "198.51.100.1"][:1] * count,
        "user_agent": ["UA"] * count,
        "ua_browser": ["Firefox"] * count, "ua_browser_version": ["140.0"] * count,
        "ua_os": ["Windows"] * count, "ua_os_version": [""] * count, "ua_device": [None] * count,
        "sdk_name": ["sentry.javascript.browser"] * count, "sdk_version": ["11.12.0"] * count,
        "payload": payloads,
        "fingerprint_hash": ["f" * 32] * count, "title": ["t"] * count, "culprit": [""] * count,
    })


def received_times(count: int, dtype: pl.Datetime) -> pl.Series:
    times = pl.Series([RECEIVED] * count, dtype=pl.Datetime(dtype.time_unit, "UTC"))
    if dtype.time_zone is None:
        return times.dt.replace_time_zone(None)
    return times.dt.convert_time_zone(dtype.time_zone)


def both_paths(build: Any, frame: pl.DataFrame,
               monkeypatch: pytest.MonkeyPatch) -> tuple[pl.DataFrame, pl.DataFrame]:
    quick = build(frame)
    with monkeypatch.context() as patched:  # every row through orjson and `make`
        patched.setattr(processed, "_EVENT_QUICK", None)
        patched.setattr(processed, "_TRANSACTION_QUICK", None)
        general = build(frame)
    return quick, general


def assert_same_rows(quick: pl.DataFrame, general: pl.DataFrame, raw: pl.DataFrame) -> None:
    assert quick.schema == general.schema
    assert quick["event_id"].to_list() == general["event_id"].to_list()
    text_columns = [name for name in JSON_COLUMNS if name in quick.columns]
    assert_frame_equal(quick.drop(text_columns), general.drop(text_columns), check_exact=True)
    # As sent (the rows' own payload has an entry added where the SDK's clock was off).
    sent = dict(zip(raw["event_id"], raw["payload"], strict=True))
    for name in text_columns:
        for payload, quick_text, general_text in zip(
                quick["event_id"].replace_strict(sent), quick[name], general[name],
                strict=True):
            if quick_text == general_text:
                continue
            # The payload's own text: same JSON, and the same text when the payload is
            # compact JSON as orjson writes it.
            assert orjson.dumps(orjson.loads(payload)).decode() != payload, name
            assert (orjson.loads(quick_text) if quick_text else None) == (
                orjson.loads(general_text) if general_text else None), name


def compare(payloads: list[str], monkeypatch: pytest.MonkeyPatch, **frame: Any) -> None:
    for build, item_type in ((event_rows, "event"), (transaction_rows, "transaction")):
        raw = raw_frame(payloads, item_type, **frame)
        assert_same_rows(*both_paths(build, raw, monkeypatch), raw)


# --- shapes and values SDKs send, and odd ones ------------------------------------------------

BIG = 2**64
ODD_PAYLOADS = [
    # numbers orjson reads as floats, where the typed decode gives integers
    f'{{"user":{{"id":{BIG}}},"tags":{{"a":"b"}},"message":"m"}}',
    f'{{"user":{{"id":-{BIG}}},"message":"m"}}',
    f'{{"user":{{"id":{2**64 - 1}}},"timestamp":{BIG}}}',
    f'{{"timestamp":{10**30},"measurements":{{"lcp":{{"value":{BIG}}}}}}}',
    f'{{"measurements":{{"lcp":{{"value":{2**63}}},"fcp":{{"value":-{2**63 + 1}}}}}}}',
    f'{{"contexts":{{"response":{{"status_code":{BIG}}}}},"extra":{{"n":{BIG}}}}}',
    '{"timestamp":1e300,"start_timestamp":-1e300}',
    # layout orjson would not write: spaces, escapes, duplicate keys
    '{ "exception" : { "values" : [ { "type" : "E" , "value" : "v\\u00e9\\/" } ] } ,'
    ' "breadcrumbs" : { "values" : [ 1 , 2 ] } , "contexts" : { "os" : { "name" : "Linux" } } }',
    '{"contexts":{"os":{"name":"A"}},"contexts":{"os":{"name":"B"}},"tags":{"a":"1","a":"2"}}',
    '{"breadcrumbs":[{"message":"x"}],"breadcrumbs":{"values":[{"message":"y"}]}}',
    '{"exception":{"values":[{"type":"E\\ud83d\\ude00","value":"\\u0000"}]}}',
    # not JSON objects, or not JSON orjson reads
    "not json", "[1, 2]", "null", '"text"', "", '{"a":1,}', '{"a":"\\ud800"}',
    '{"extra":' + "[" * 2000 + "]" * 2000 + "}",
    '{"extra":' + "[" * 300 + "]" * 300 + "}",
    '\ufeff{"message":"bom"}', '{"message":"m"} ',
]


def event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "a" * 32, "timestamp": 1_790_000_000.25, "platform": "javascript",
            **fields}


ODD_EVENTS: list[dict[str, Any]] = [
    event(),
    {},
    event(timestamp=None), event(timestamp=True), event(timestamp=0), event(timestamp=-1.5),
    event(timestamp=1e11), event(timestamp=99_999_999_999.9999995), event(timestamp=2**53),
    event(timestamp=1_790_000_000.0000005), event(timestamp=1_790_000_000.9999996),
    event(timestamp="2026-11-27T09:59:58.5Z"), event(timestamp="2026-11-27T09:59:58+02:00"),
    event(timestamp="2026-11-27T09:59:58.123456+01:00:00.5"), event(timestamp="2026-11-27"),
    event(timestamp="yesterday"), event(timestamp=""), event(timestamp=[1]),
    event(level="WARNING "), event(level=5), event(level=None), event(level="x" * 9000),
    event(platform=""), event(platform=None), event(platform=1),
    event(message="m" * 9000), event(message={"formatted": "", "message": "fallback"}),
    event(message={"formatted": 5}), event(message=""), event(message=["m"]),
    event(logentry={"formatted": "logged"}, message="m"), event(logentry="entry"),
    event(logentry={"message": None}, message={"message": "second"}), event(logentry=3),
    event(exception=[{"type": "E", "value": "v"}, None, "x"]),
    event(exception=[{"type": "E", "value": "v"}]), event(exception={"values": None}),
    event(exception={"values": []}), event(exception={}), event(exception="E"),
    event(exception={"values": [{"type": "A"}, {"type": "B", "value": 5}]}),
    event(exception={"values": [{"type": "A", "mechanism": {"handled": "no"}}]}),
    event(exception={"values": [{"type": "A", "mechanism": {"handled": True}}]}),
    event(exception={"values": [{"type": "A", "mechanism": "generic"}]}),
    event(exception={"values": [{"type": "A", "mechanism": None, "value": None}]}),
    event(exception={"values": [{"value": "v" * 8193}]}),
    event(exception={"values": [{"type": "A"}], "extra": 1}),
    event(release="r" * 251), event(release="r" * 250), event(release=""), event(release=1.5),
    event(environment="e" * 65), event(dist="d" * 70), event(dist=None), event(transaction=7),
    event(user=None), event(user="ada"), event(user={}), event(user={"id": 0}),
    event(user={"id": ""}, user_email="a@b"), event(user={"id": "", "email": "a@b"}),
    event(user={"id": 1.5}), event(user={"id": True}), event(user={"username": 42}),
    event(user={"username": "ada", "ip_address": "10.0.0.1"}),
    event(user={"ip_address": ""}), event(user={"ip_address": "{{auto}}"}),
    event(user={"email": "e" * 9000}), event(user={"id": -(2**63)}),
    event(contexts=None), event(contexts=[]), event(contexts="c"), event(contexts={}),
    event(contexts={"browser": "Chrome"}), event(contexts={"browser": {"name": 5}}),
    event(contexts={"browser": {"name": "", "version": "1"}, "os": None}),
    event(contexts={"device": {"model": "", "family": "Pixel"}}),
    event(contexts={"device": {"model": None, "family": None}, "os": {"version": "14"}}),
    event(contexts={"device": {"model": "iPhone", "family": "Apple"}, "app": {"a": [1, {}]}}),
    event(request=None), event(request={"url": None}), event(request={"url": 3}),
    event(request="GET /"), event(request={"url": "https://x/é", "method": "post"}),
    event(sdk=None), event(sdk={"name": "", "version": None}), event(sdk={"name": "py"}),
    event(sdk=[]),
    event(tags=None), event(tags=[]), event(tags={}), event(tags=1), event(tags="t"),
    event(tags={"a": None}), event(tags={"a": 1}), event(tags={"a": [1, 2]}),
    event(tags={"k" * 250: "v", "k" * 200: "w"}), event(tags={"a": "v" * 201}),
    event(tags=[["a", "b"], [None, "c"], ["d", None], ["a", "z"]]),
    event(tags=[["a", "b", "c"]]), event(tags=[["a"]]), event(tags=[("a", "b"), "x"]),
    event(tags={"level": "custom", "release": "", "browser": "Edge"}, release="r"),
    event(tags={"device": "d", "os": "o"}, contexts={"os": {"name": "Linux"}}),
    event(fingerprint=None), event(fingerprint=[]), event(fingerprint=1),
    event(fingerprint=["{{ default }}", None, 3]), event(fingerprint=["a", None]),
    event(fingerprint=[["nested"]]), event(fingerprint=["f" * 9000]),
    event(breadcrumbs=None), event(breadcrumbs=[]), event(breadcrumbs=0), event(breadcrumbs=""),
    event(breadcrumbs="x"), event(breadcrumbs=True), event(breadcrumbs={}),
    event(breadcrumbs={"values": None}), event(breadcrumbs={"values": 5}),
    event(breadcrumbs={"values": [{"data": [1, 2], "message": 404}]}),
    event(breadcrumbs=[{"message": "é\n\"q\""}]),
    event(type="transaction", transaction="/t", start_timestamp=1_790_000_000.0),
    event(start_timestamp="2026-11-27T09:59:58Z", timestamp=1_790_000_000.5),
    event(start_timestamp=1_790_000_001.0), event(start_timestamp=None, timestamp=None),
    event(transaction="t" * 1001), event(transaction=None),
    event(contexts={"trace": {"trace_id": "a" * 32, "span_id": "b" * 16, "op": "pageload",
                              "status": "ok", "data": {"http.response.status_code": 404}}}),
    event(contexts={"trace": {"span_id": "b" * 33}}), event(contexts={"trace": "t"}),
    event(contexts={"trace": {"data": []}}), event(contexts={"trace": {"data": None}}),
    event(contexts={"trace": {"op": 5}}), event(contexts={"trace": None, "response": None}),
    event(contexts={"response": {"status_code": 0},
                    "trace": {"data": {"http.response.status_code": 201}}}),
    event(contexts={"response": {"status_code": True}}),
    event(contexts={"response": {"status_code": 70000}}),
    event(contexts={"response": {"status_code": -1}}),
    event(contexts={"response": {"status_code": "200"}}),
    event(contexts={"response": {"status_code": 200.0}}),
    event(contexts={"response": "r"}),
    event(request={"method": "g" * 17}), event(request={"method": None}),
    event(measurements=None), event(measurements=[]), event(measurements={"a": None}),
    event(measurements={"a": 1}), event(measurements={"a": {"value": True}}),
    event(measurements={"a": {"value": "1"}}), event(measurements={"a": {"value": None}}),
    event(measurements={"a": {}}), event(measurements={"m" * 65: {"value": 1}}),
    event(measurements={"lcp": {"value": 1.5, "unit": "ms"}, "cls": {"value": 0}}),
    event(spans=None), event(spans=[]), event(spans=1), event(spans=[None]), event(spans=["s"]),
    event(spans=[{}]), event(spans=[{"op": 5}]), event(spans=[{"description": "d" * 2001}]),
    event(spans=[{"op": "db", "description": "SELECT", "status": "ok",
                  "start_timestamp": 1_790_000_000.1, "timestamp": 1_790_000_000.05},
                 {"start_timestamp": "2026-11-27T09:59:58Z", "timestamp": None},
                 {"start_timestamp": True, "timestamp": 1e20}],
          start_timestamp=1_790_000_000.0),
]


def test_odd_payloads_get_the_rows_of_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    compare(ODD_PAYLOADS, monkeypatch)


def test_odd_events_get_the_rows_of_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    compare([orjson.dumps(one).decode() for one in ODD_EVENTS], monkeypatch)
    # The same events as SDKs may lay them out (spaces, escaped non-ASCII)
    compare([json.dumps(one) for one in ODD_EVENTS], monkeypatch)
    compare([json.dumps(one, indent=1, ensure_ascii=False) for one in ODD_EVENTS], monkeypatch)


@pytest.mark.parametrize("received", [pl.Datetime("us", "UTC"), pl.Datetime("ns", "UTC"),
                                      pl.Datetime("ms"), pl.Datetime("ms", "Europe/Paris")])
def test_receive_times_of_other_types(received: pl.Datetime,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [orjson.dumps(one).decode() for one in ODD_EVENTS[:40]]
    compare(payloads, monkeypatch, received=received)


def test_a_row_without_a_receive_time_or_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [orjson.dumps(one).decode() for one in ODD_EVENTS[:20]]
    frame = raw_frame(payloads).with_columns(
        received_at=pl.when(pl.col("project_id") % 3 == 0).then(None)
        .otherwise(pl.col("received_at")))
    for build in (event_rows, transaction_rows):
        assert_same_rows(*both_paths(build, frame, monkeypatch), frame)
        assert_same_rows(*both_paths(build, frame.drop("ua_os"), monkeypatch), frame)


# --- random events ----------------------------------------------------------------------------


def random_event(rng: random.Random) -> dict[str, Any]:
    odd = rng.choice([0.0, 0.02, 0.15])  # how often a value is of another type

    def text(size: int = 12) -> str:
        return "".join(rng.choice("ab é😀\"\\/\n\t\x00<") for _ in range(rng.randint(0, size)))

    def leaf() -> Any:
        return rng.choice([None, True, False, 0, -7, 2**63, 1.5, 1e-7, 1e300, "", text(),
                           text(300), [], {}, [text()], {"k": text()}])

    def value(make: Any) -> Any:
        return leaf() if rng.random() < odd else make()

    def time() -> Any:
        return rng.choice([
            rng.uniform(0, 2e9), rng.randint(0, 2 * 10**9), round(rng.uniform(1.7e9, 1.8e9), 6),
            datetime.fromtimestamp(rng.uniform(0, 2e9), UTC).isoformat(), text(), None])

    def named() -> dict[str, Any]:
        return {name: value(text) for name in rng.sample(["name", "version", "x"], 2)}

    def exception() -> dict[str, Any]:
        return {"type": value(text), "value": value(text),
                "mechanism": value(lambda: {"handled": rng.choice([True, False, None, 1])}),
                "stacktrace": {"frames": [{"function": text(), "lineno": rng.randint(0, 9)}]}}

    def span() -> dict[str, Any]:
        return {"op": value(text), "description": value(text), "status": value(text),
                "start_timestamp": time(), "timestamp": time()}

    fields: dict[str, Any] = {
        "timestamp": time, "start_timestamp": time,
        "level": lambda: rng.choice(["error", "warning", "Fatal", "log", text()]),
        "platform": text, "release": text, "environment": text, "dist": text,
        "transaction": text,
        "message": lambda: rng.choice([text(), {"formatted": value(text)},
                                       {"message": value(text)}]),
        "logentry": lambda: {"formatted": value(text), "message": value(text)},
        "exception": lambda: rng.choice([
            {"values": [value(exception) for _ in range(rng.randint(0, 3))]},
            [value(exception)]]),
        "user": lambda: {name: value(lambda: rng.choice([text(), rng.randint(-9, 9)]))
                         if name == "id" else value(text)
                         for name in rng.sample(["id", "email", "username", "ip_address"], 2)},
        "contexts": lambda: {name: value(named) for name in rng.sample(
            ["browser", "os", "device", "trace", "response", "app"], 3)} | {
            "device": value(lambda: {"model": value(text), "family": value(text)}),
            "trace": value(lambda: {"trace_id": value(text), "op": value(text),
                                    "data": value(lambda: {"http.response.status_code":
                                                           rng.choice([200, 0, True, "5"])})}),
            "response": value(lambda: {"status_code": rng.choice([404, None, 1e3, 99999])})},
        "request": lambda: {"url": value(text), "method": value(text)},
        "sdk": lambda: {"name": value(text), "version": value(text)},
        "tags": lambda: rng.choice([{text(): value(text) for _ in range(rng.randint(0, 4))},
                                    [[value(text), value(text)] for _ in range(2)]]),
        "fingerprint": lambda: [value(text) for _ in range(rng.randint(0, 3))],
        "breadcrumbs": lambda: rng.choice([{"values": [{"message": text()}]},
                                           [{"message": text()}]]),
        "measurements": lambda: {text(): value(lambda: {"value": rng.choice(
            [1, 2.5, True, "x", None])}) for _ in range(2)},
        "spans": lambda: [value(span) for _ in range(rng.randint(0, 3))],
        "extra": leaf,
    }
    chosen = rng.sample(sorted(fields), rng.randint(3, len(fields)))
    return {name: value(fields[name]) for name in chosen}


def test_random_events_get_the_rows_of_the_general_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261127)
    events = [random_event(rng) for _ in range(1500)]
    compare([orjson.dumps(one).decode() if rng.random() < 0.7 else json.dumps(one)
             for one in events], monkeypatch)


# --- what the quick path takes ----------------------------------------------------------------


def test_events_as_sdks_send_them_take_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    error = event(
        level="error", release="shop@1.0.4", environment="prod", user={"id": 42, "email": "e"},
        tags={"plan": "pro"}, fingerprint=["{{ default }}"], request={"url": "https://x/"},
        contexts={"browser": {"name": "Chrome", "version": "156"}},
        exception={"values": [{"type": "TypeError", "value": "x", "mechanism": {
            "handled": False}, "stacktrace": {"frames": [{"function": "f"}]}}]},
        breadcrumbs={"values": [{"message": "click"}]}, extra={"anything": [1, {"b": None}]})
    transaction = event(
        type="transaction", transaction="/cart", start_timestamp=1_790_000_000.0,
        contexts={"trace": {"trace_id": "a" * 32, "span_id": "b" * 16, "op": "pageload"}},
        measurements={"lcp": {"value": 1.5}}, tags=[["plan", "pro"]],
        spans=[{"op": "http.client", "start_timestamp": 1_790_000_000.1,
                "timestamp": 1_790_000_000.2}])

    def refuse(row: Any, event: Any) -> None:
        raise AssertionError("read by the general path")

    monkeypatch.setattr(processed, "_event_row", refuse)
    monkeypatch.setattr(processed, "_transaction_row", refuse)
    rows = event_rows(raw_frame([orjson.dumps(error).decode()]))
    assert rows["exception_type"].to_list() == ["TypeError"]
    assert rows["stacktrace"].to_list() == [orjson.dumps(error["exception"]["values"]).decode()]
    assert rows["breadcrumbs"].to_list() == ['[{"message":"click"}]']
    rows = transaction_rows(raw_frame([orjson.dumps(transaction).decode()], "transaction"))
    assert rows["spans.op"].to_list() == [["http.client"]]


def test_numbers_beyond_a_double_no_longer_drop_the_event() -> None:
    # orjson refuses the whole event; msgspec skips the part no row reads (as fingerprinting
    # does), so the event keeps its row.
    payload = '{"message":"m","extra":{"n":1e400},"contexts":{"app":{"n":1e400}}}'
    rows = event_rows(raw_frame([payload]))
    assert rows["message"].to_list() == ["m"]
    assert rows["contexts"].to_list() == ['{"app":{"n":1e400}}']
