"""The quick paths of fingerprinting: one exception that is no group
(`_single_exception_grouping`, with its cache of hashes) must give what the general path of
chains and groups (`_chain_grouping`) gives; the cache of whole fingerprints of such events
(`_quick_fingerprint`) what `_fingerprint` gives; and a transaction's typed name decode the
title orjson's full parse gives."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipelines import fingerprinting as fp

JS_FRAMES = [
    {"filename": "https://cdn.example.com/static/js/vendor.9.js", "function": "r", "in_app": False},
    {"filename": "https://cdn.example.com/static/js/app.3.js", "function": "loadProfile"},
]
WEAK_FRAMES = [{"filename": "https://cdn.example.com/static/js/app.3f9c1a2b.js", "function": "e"}]
PY_FRAMES = [{"module": "shop.cart", "function": "total", "context_line": "  x = a / b  ",
              "abs_path": "/srv/app/shop/cart.py"},
             {"module": "django.core", "abs_path": "/usr/lib/python3/site-packages/django/x.py",
              "function": "run"}]


def exception(**fields: Any) -> dict[str, Any]:
    return {"type": "TypeError", "value": "x is 42 at 0x1f", **fields}


SINGLE: dict[str, dict[str, Any]] = {
    "js frames": {"platform": "javascript",
                  "exception": {"values": [exception(stacktrace={"frames": JS_FRAMES})]}},
    "weak innermost frame": {"platform": "javascript", "exception": {"values": [
        exception(stacktrace={"frames": WEAK_FRAMES})]}},
    "python frames with a module": {"platform": "python", "exception": {"values": [
        exception(module="shop.errors", stacktrace={"frames": PY_FRAMES})]}},
    "synthetic": {"platform": "python", "exception": {"values": [
        exception(mechanism={"synthetic": True}, stacktrace={"frames": PY_FRAMES})]}},
    "no frames": {"exception": {"values": [exception()]}},
    "no frames, no type": {"exception": {"values": [{"value": "only 12 words"}]}},
    "nothing at all": {"message": "fallback to 7 messages", "exception": {"values": [{}]}},
    "empty exception, no message": {"level": "warning", "exception": {"values": [{}]}},
    "a bare list": {"exception": [exception(stacktrace={"frames": JS_FRAMES})]},
    "top-level stack trace": {"platform": "node", "stacktrace": {"frames": JS_FRAMES},
                              "exception": {"values": [exception()]}},
    "thread frames": {"platform": "python", "threads": {"values": [
        {"id": 7, "crashed": True, "stacktrace": {"frames": PY_FRAMES}}]},
        "exception": {"values": [exception(thread_id=7)]}},
    "null frames": {"exception": {"values": [exception(stacktrace={"frames": [None, None]})]}},
    "frames of nothing": {"exception": {"values": [exception(stacktrace={"frames": [{}]})]}},
    "numbers for text": {"platform": 5, "exception": {"values": [
        {"type": 404, "value": 1.5, "module": True,
         "stacktrace": {"frames": [{"function": 3, "filename": 4, "in_app": "yes"}]}}]}},
    "a mechanism without a group": {"exception": {"values": [
        exception(mechanism={"type": "generic", "handled": False},
                  stacktrace={"frames": PY_FRAMES})]}},
    "a mechanism that is text": {"exception": {"values": [
        exception(mechanism="chained", stacktrace={"frames": PY_FRAMES})]}},
    "a group of its own": {"exception": {"values": [
        exception(mechanism={"is_exception_group": True, "exception_id": 0})]}},
    "a lenient frame list": {"exception": {"values": [
        exception(stacktrace={"frames": ["text", *PY_FRAMES]})]}},
    "a custom fingerprint": {"fingerprint": ["{{ default }}", "{{ type }}"],
                             "exception": {"values": [exception()]}},
}


@pytest.mark.parametrize("name", SINGLE)
def test_one_exception_is_grouped_as_the_general_path_groups_it(name: str) -> None:
    event = fp._decode(orjson.dumps(SINGLE[name]))
    assert event is not None
    exceptions = fp._exceptions(event)
    general = fp._chain_grouping(event, exceptions)
    for _ in range(2):  # the hash cache empty, then filled
        grouping = fp._exception_grouping(event, exceptions)
        if general is None:
            assert grouping is None
            continue
        assert grouping is not None
        assert grouping[:4] == general[:4]
        assert fp._default_hash(grouping) == fp._hash(general.strategy, general.components)
    assert fp.fingerprint_event(SINGLE[name]) == fp.fingerprint_event(orjson.loads(
        orjson.dumps(SINGLE[name])))


def test_message_hashes_come_from_the_cache_unchanged() -> None:
    event = {"message": "User 1234 not found"}
    first = fp.fingerprint_event(event)
    assert first == fp.fingerprint_event(event)
    template = fp._normalize_message_cached("User 1234 not found")
    assert first.fingerprint_hash == fp._hash("message", [template])


TRANSACTIONS = [
    '{"transaction": "/cart"}', '{"transaction": "  /cart\\n/two  "}', '{"transaction": 5}',
    '{"transaction": 123456789012345678901234567890}', '{"transaction": null}',
    '{"transaction": ["a"]}', '{"transaction": {"a": 1}}', '{"transaction": true}',
    '{"transaction": "a", "transaction": "b"}', '{"spans": 1, "transaction": "' + "x" * 300 + '"}',
    '[1]', '"text"', "", "not json", '{"transaction": "a"}x', '{"x": NaN, "transaction": "a"}',
    '{"transaction": "\\ud800"}', '{"a": ' + "[" * 1100 + "]" * 1100 + ', "transaction": "a"}',
    '{"transaction": "\\u00e9t\\u00e9 \\ud83d\\ude00"}',
]


def orjson_title(payload: str) -> str:
    try:
        item = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        return ""
    return fp._truncate(fp._text(item.get("transaction"))) if isinstance(item, dict) else ""


@pytest.mark.parametrize("payload", TRANSACTIONS)
def test_a_transaction_title_is_the_one_orjson_reads(payload: str) -> None:
    assert fp.fingerprint_payload("transaction", payload).title == orjson_title(payload)
    assert fp.fingerprint_payload("transaction", payload.encode()).title == orjson_title(payload)


def test_a_number_beyond_a_double_elsewhere_keeps_the_transaction_name() -> None:
    # orjson refuses the whole payload; the typed decode skips the number (as the row does).
    assert fp.fingerprint_payload("transaction", '{"x": 1e400, "transaction": "/a"}').title == "/a"


def general_fingerprint(payload: bytes) -> fp.Fingerprint:
    event = fp._decode(payload)
    return fp._INVALID if event is None else fp._fingerprint(event)


QUICK_SHAPES: dict[str, Any] = {
    **SINGLE,
    "a title over two lines": {"exception": {"values": [
        exception(value="first line\nsecond", stacktrace={"frames": JS_FRAMES})]}},
    "a long title": {"exception": {"values": [
        exception(value="v" * 300, stacktrace={"frames": JS_FRAMES})]}},
    "padded type and value": {"exception": {"values": [
        exception(type="  TypeError ", value="\t x ", stacktrace={"frames": JS_FRAMES})]}},
    "an empty value": {"exception": {"values": [
        exception(value="  ", stacktrace={"frames": JS_FRAMES})]}},
    "no type": {"exception": {"values": [{"value": "v", "stacktrace": {"frames": JS_FRAMES}}]}},
    "a number for a value": {"exception": {"values": [
        exception(value=12, stacktrace={"frames": JS_FRAMES})]}},
    "true for a type": {"exception": {"values": [
        exception(type=True, stacktrace={"frames": JS_FRAMES})]}},
    "one for a type": {"exception": {"values": [
        exception(type=1, stacktrace={"frames": JS_FRAMES})]}},
    "one for a platform": {"platform": 1, "exception": {"values": [
        exception(stacktrace={"frames": JS_FRAMES})]}},
    "a transaction for the culprit": {"transaction": "/cart", "exception": {"values": [
        exception(stacktrace={"frames": [{"filename": "a.js", "in_app": False}]})]}},
    "frames that are text": {"exception": {"values": [exception(stacktrace={"frames": "x"})]}},
    "a frame that is a list": {"exception": {"values": [
        exception(stacktrace={"frames": [[1], *JS_FRAMES]})]}},
    "a frame field that is an object": {"exception": {"values": [
        exception(stacktrace={"frames": [{"function": {"a": 1}}, *JS_FRAMES]})]}},
    "frames in the exception and at the top": {
        "stacktrace": {"frames": PY_FRAMES},
        "exception": {"values": [exception(stacktrace={"frames": []})]}},
    "a null exception beside one": {"exception": {"values": [
        None, exception(stacktrace={"frames": JS_FRAMES})]}},
    "a chain": {"exception": {"values": [exception(stacktrace={"frames": PY_FRAMES}),
                                         exception(stacktrace={"frames": JS_FRAMES})]}},
    "a fingerprint": {"fingerprint": ["a"], "exception": {"values": [
        exception(stacktrace={"frames": JS_FRAMES})]}},
    "not an object": [1, 2],
}


@pytest.mark.parametrize("name", QUICK_SHAPES)
def test_the_quick_fingerprint_is_the_general_one(name: str) -> None:
    payload = orjson.dumps(QUICK_SHAPES[name])
    expected = general_fingerprint(payload)
    for _ in range(2):  # the caches empty, then filled
        assert fp.fingerprint_payload("event", payload) == expected
        assert fp.fingerprint_payload("event", payload.decode()) == expected


def test_frames_alike_but_for_line_numbers_share_the_cached_fingerprint() -> None:
    frames = [dict(frame, lineno=index, colno=7) for index, frame in enumerate(PY_FRAMES)]
    moved = [dict(frame, lineno=index + 40, colno=1) for index, frame in enumerate(PY_FRAMES)]
    first = {"platform": "python", "exception": {"values": [
        exception(value="a 1", stacktrace={"frames": frames})]}}
    second = {"platform": "python", "transaction": "/t", "exception": {"values": [
        exception(value="b 2", stacktrace={"frames": moved})]}}
    one = fp.fingerprint_payload("event", orjson.dumps(first))
    two = fp.fingerprint_payload("event", orjson.dumps(second))
    assert one.fingerprint_hash == two.fingerprint_hash
    assert (one.title, two.title) == ("TypeError: a 1", "TypeError: b 2")
    assert two == general_fingerprint(orjson.dumps(second))
