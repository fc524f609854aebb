"""PII scrubbing (pipelines/scrubbing.py): every kind of personal data in every place of an
event is gone, ordinary values survive, per-project settings apply, odd shapes and JSON
escapes are handled, and the fast vectorized path agrees with the all-Python reference."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.scrubbing import (
    MARKER,
    IpMode,
    ScrubConfig,
    hash_ip,
    iban_valid,
    is_sensitive_key,
    luhn_valid,
    scrub_event_json,
    scrub_payloads,
    scrub_text,
)
from tests.pipelines.scrubbing_cases.realistic import SECRETS, realistic_payloads

Event = dict[str, Any]


def raw_events(payloads: list[str | None], project_ids: list[int] | None = None,
               client_ips: list[str] | None = None) -> pl.DataFrame:
    """A frame shaped like the README's raw events."""
    count = len(payloads)
    return pl.DataFrame(
        {
            "organization_id": [1] * count,
            "project_id": project_ids or [1] * count,
            "event_id": [f"{i:032x}" for i in range(count)],
            "item_type": ["event"] * count,
            "received_at": [datetime(2026, 11, 1, tzinfo=UTC)] * count,
            "client_ip": client_ips or ["203.0.113.7"] * count,
            **{name: ["x"] * count for name in (
                "user_agent", "ua_browser", "ua_browser_version", "ua_os", "ua_os_version",
                "ua_device", "sdk_name", "sdk_version")},
            "payload": payloads,
        },
        schema_overrides={"organization_id": pl.UInt64, "project_id": pl.UInt64,
                          "received_at": pl.Datetime("ms", "UTC"), "payload": pl.String},
    )


def scrub_one(event: Event | str, config: ScrubConfig | None = None,
              client_ip: str = "203.0.113.7") -> str:
    payload = event if isinstance(event, str) else orjson.dumps(event).decode()
    frame = raw_events([payload], client_ips=[client_ip])
    return scrub_payloads(frame, {1: config} if config else {})["payload"][0]


def decoded(value: Any) -> Any:
    """A parsed event with JSON held in strings parsed too: the fast path keeps such a
    string's formatting while the reference path re-serializes it, same content."""
    if isinstance(value, dict):
        return {key: decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decoded(item) for item in value]
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return decoded(orjson.loads(value))
        except orjson.JSONDecodeError:
            return value
    return value


# --- Where personal data turns up ---------------------------------------------------------

# Free text (messages, values under ordinary keys) in every place of an event.
TEXT_PLACES: dict[str, Callable[[str], Event]] = {
    "exception.value": lambda t: {"exception": {"values": [{"type": "Error", "value": t}]}},
    "message": lambda t: {"message": t},
    "logentry.formatted": lambda t: {"logentry": {"message": "%s", "formatted": t}},
    "logentry.params": lambda t: {"logentry": {"message": "failed: %s", "params": [t]}},
    "breadcrumb.message": lambda t: {"breadcrumbs": {"values": [{"message": t}]}},
    "breadcrumb.data": lambda t: {"breadcrumbs": [{"category": "http", "data": {"note": t}}]},
    "request.data": lambda t: {"request": {"data": {"comment": t, "qty": 2}}},
    "request.data-text": lambda t: {"request": {"data": t}},
    "request.data-json": lambda t: {"request": {"data": json.dumps({"comment": t})}},
    "request.headers": lambda t: {"request": {"headers": {"X-Note": t, "Accept": "*/*"}}},
    "request.headers-pairs": lambda t: {"request": {"headers": [["X-Note", t], ["Accept", "*"]]}},
    "request.query_string": lambda t: {"request": {"query_string": [["q", t], ["page", "2"]]}},
    "extra": lambda t: {"extra": {"note": t, "nested": {"list": [t, 1]}}},
    "extra-json-text": lambda t: {"extra": {"body": json.dumps({"items": [{"note": t}]})}},
    "contexts": lambda t: {"contexts": {"app": {"note": t}}},
    "frame.vars": lambda t: {"exception": {"values": [{"type": "E", "stacktrace": {
        "frames": [{"function": "f", "vars": {"note": t, "repr": repr(t)}}]}}]}},
    "frame.context_line": lambda t: {"exception": {"values": [{"type": "E", "stacktrace": {
        "frames": [{"function": "f", "context_line": f"    call({t!r})"}]}}]}},
    "tags": lambda t: {"tags": {"note": t}},
    "tags-pairs": lambda t: {"tags": [["note", t], ["env", "prod"]]},
    "user.data": lambda t: {"user": {"id": "42", "data": {"note": t}}},
    "spans": lambda t: {"spans": [{"op": "db", "description": t, "data": {"q": t}}]},
}

# Pattern kinds: (text holding the secret, the secret, what must stay around it).
PATTERN_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "email": ("mail jane.doe+test@example.co.uk now", "jane.doe+test@example.co.uk",
              ("mail ", " now")),
    "email-unicode": ("für jöhn@exämple.de 🚀", "jöhn@exämple.de", ("für ", " 🚀")),
    "card-spaces": ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111",
                    ("card ", " declined")),
    "card-dashes": ("mc 5500-0000-0000-0004.", "5500-0000-0000-0004", ("mc ",)),
    "card-amex": ("amex 378282246310005 ok", "378282246310005", (" ok",)),
    "card-after-number": ("order 12 4111 1111 1111 1111", "4111 1111 1111 1111", ("order 12",)),
    "iban-spaces": ("to GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32",
                    ("to ", " please")),
    "iban-compact": ("IBAN:DE89370400440532013000", "DE89370400440532013000", ("IBAN:",)),
    "ssn": ("ssn 123-45-6789 on file", "123-45-6789", ("ssn ", " on file")),
    "bearer": ("sent Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
               "eyJhbGciOiJIUzI1NiJ9", ("sent Bearer ",)),
    "basic": ("Basic dXNlcjpodW50ZXIy was rejected", "dXNlcjpodW50ZXIy", (" was rejected",)),
    "token-scheme": ("Token 9944b09199c62bcf9418ad846dd0e4bb", "9944b09199c62bcf", ("Token ",)),
    "url-password": ("db postgres://admin:s3cr3tP4ss@db.internal:5432/app", "s3cr3tP4ss",
                     ("postgres://admin:", "@db.internal:5432/app")),
    "private-key": ("key -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n"
                    "-----END RSA PRIVATE KEY----- end", "MIIEowIBAAKCAQEA7bq", ("key ", " end")),
    "private-key-cut": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA",
                        "b3BlbnNzaC1rZXktdjEAAAA", ()),
    "key-value": ("login failed: password=hunter2xyz, retry", "hunter2xyz",
                  ("password=", ", retry")),
    "key-value-quoted": ("cfg {'api_key': 'AKIAIOSFODNN7'}", "AKIAIOSFODNN7", ("'api_key': ",)),
    "key-value-url": ("GET https://x.example.com/cb?code=1&access_token=ya29A0ARr&x=2",
                      "ya29A0ARr", ("code=1&access_token=", "&x=2")),
}

# Sensitive keys (values filtered wherever the key appears) and where keys appear.
SENSITIVE_KEYS = (
    "password", "passwd", "pwd", "user_password", "secret", "client_secret", "api_key",
    "apikey", "X-Api-Key", "token", "access_token", "refresh_token", "auth_token", "auth",
    "Authorization", "Proxy-Authorization", "cookie", "cookies", "Set-Cookie", "session",
    "sessionid", "PHPSESSID", "credentials", "csrf", "X-CSRFToken", "XSRF-TOKEN",
    "csrfmiddlewaretoken", "private_key", "ssn", "credit_card", "card_number", "cvv",
)
KEY_PLACES: dict[str, Callable[[str, str], Event]] = {
    "request.data": lambda k, v: {"request": {"data": {k: v, "comment": "ok"}}},
    "request.data-form": lambda k, v: {"request": {"data": f"user=jane&{k}={v}&remember=1"}},
    "request.data-json": lambda k, v: {"request": {"data": json.dumps({k: v, "n": 1})}},
    "request.headers": lambda k, v: {"request": {"headers": {k: v, "Accept": "*/*"}}},
    "request.headers-pairs": lambda k, v: {"request": {"headers": [[k, v], ["Accept", "*"]]}},
    "request.cookies": lambda k, v: {"request": {"cookies": {k: v, "theme": "dark"}}},
    "request.cookies-pairs": lambda k, v: {"request": {"cookies": [[k, v]]}},
    "request.cookies-text": lambda k, v: {"request": {"cookies": f"theme=dark; {k}={v}"}},
    "request.query_string": lambda k, v: {"request": {"query_string": f"page=2&{k}={v}"}},
    "request.query-pairs": lambda k, v: {"request": {"query_string": [["page", "2"], [k, v]]}},
    "request.url": lambda k, v: {"request": {"url": f"https://shop.example.com/cb?{k}={v}"}},
    "extra": lambda k, v: {"extra": {k: v, "other": 1}},
    "contexts": lambda k, v: {"contexts": {"app": {"settings": {k: v}}}},
    "breadcrumb.data": lambda k, v: {"breadcrumbs": {"values": [{"data": {k: v}}]}},
    "breadcrumb.message": lambda k, v: {"breadcrumbs": [{"message": f"retry with {k}={v}"}]},
    "exception.value": lambda k, v: {"exception": {"values": [
        {"type": "AuthError", "value": f"rejected {k}: {v}"}]}},
    "frame.vars": lambda k, v: {"exception": {"values": [{"type": "E", "stacktrace": {
        "frames": [{"function": "login", "vars": {k: repr(v), "attempt": 3}}]}}]}},
    "frame.vars-repr": lambda k, v: {"exception": {"values": [{"type": "E", "stacktrace": {
        "frames": [{"function": "login", "vars": {"form": repr({k: v})}}]}}]}},
    "tags": lambda k, v: {"tags": {k: v, "env": "prod"}},
    "tags-pairs": lambda k, v: {"tags": [[k, v], ["env", "prod"]]},
    "user.data": lambda k, v: {"user": {"id": "42", "data": {k: v}}},
    "logentry.params": lambda k, v: {"logentry": {"message": f"login {k}=%s user=%s",
                                                  "params": [v, "jane"]}},
    "logentry.named": lambda k, v: {"logentry": {"message": f"{k}=%(v)s", "params": {"v": v}}},
}

CASES: dict[str, tuple[Event, tuple[str, ...], tuple[str, ...]]] = {}
for place, make in TEXT_PLACES.items():
    for kind, (text, secret, kept) in PATTERN_KINDS.items():
        CASES[f"{kind}-in-{place}"] = (make(text), (secret,), kept)
for place, make_pair in KEY_PLACES.items():
    for number, key in enumerate(SENSITIVE_KEYS):
        CASES[f"key-{key}-in-{place}"] = (make_pair(key, f"Vq{number}xZed"),
                                          (f"Vq{number}xZed",), ())


@cache
def scrubbed_cases() -> dict[str, tuple[str, str]]:
    """Every case scrubbed in one frame (as batches are), and by the reference path."""
    names = list(CASES)
    payloads = [orjson.dumps(CASES[name][0]).decode() for name in names]
    fast = scrub_payloads(raw_events(payloads), {})["payload"].to_list()
    return {name: (out, scrub_event_json(payload, client_ip="203.0.113.7"))
            for name, payload, out in zip(names, payloads, fast, strict=True)}


def shape(value: Any) -> Any:
    """The event's structure: keys and list lengths, not the strings."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__ if not isinstance(value, str) else "str"


@pytest.mark.parametrize("case", list(CASES))
def test_personal_data_is_gone_everywhere(case: str) -> None:
    event, secrets, kept = CASES[case]
    out, reference = scrubbed_cases()[case]
    parsed = orjson.loads(out)  # still valid JSON
    for secret in secrets:
        assert secret not in out, out
        assert json.dumps(secret)[1:-1] not in out, out  # nor escaped
    assert MARKER in out
    for text in kept:
        assert text in json.dumps(parsed, ensure_ascii=False) or text in out, (text, out)
    assert shape(parsed) == shape(event)  # filtered values stay where they were
    assert decoded(parsed) == decoded(orjson.loads(reference))


ORDINARY_TEXTS = (
    "order 4111 1111 1111 1112 shipped",  # fails Luhn
    "order id 1234567890123456",  # starts with 1: no card issuer
    "ORD-2024-000123456789",
    "ts 1767225600123 and 1767225600.123",
    "version 1.2.3.4 of shop@1.4.2",
    "at 2026-11-01T12:30:45.123Z (2026-11-01 12:30:45)",
    "request 550e8400-e29b-41d4-a716-446655440000 trace 0af7651916cd43dd8448eb211c80319c",
    "user 123456789 item 42 amount 1999.99",
    "Invalid token", "token expired", "CSRF token missing or incorrect.",
    "Bearer token missing", "Basic usage of the API", "session expired, please log in",
    "the password is wrong", "Authentication failed for user", "author=Jane Doe",
    "https://example.com/checkout?page=2&sort=asc#top",
    "import * from '@sentry/browser'", "fn@https://app.example.com/main.js:1:2",
    "IBAN DE89 3704 0044 0532 0130 01 is mistyped",  # fails mod 97
    "never issued: 000-12-3456 666-12-3456 912-34-5678", "pi 3.14159265358979323846",
    "call +1 415-555-0123, ISBN 978-3-16-148410-0", "Zm9vYmFy", "über 🚀 東京",
    "max_tokens: 1024", 'quote " backslash \\ newline \n tab \t',
)
ORDINARY_KEYS: Event = {
    "author": "Jane", "max_tokens": 1024, "tokens_used": 77, "is_authenticated": True,
    "tokenizer": "bpe", "sessions": 5, "card": "visa", "bypass_cache": False, "passenger": "A",
    "classname": "Cart", "tokenId": "t-1", "authority": "root",
}
# Sensitive keys whose values hide nothing.
EMPTY_SECRETS: Event = {"password_set": True, "token": None, "secret": "", "auth": False}
ORDINARY_PLACES = ("exception.value", "breadcrumb.message", "request.data", "extra",
                   "frame.vars", "tags", "logentry.params", "request.headers-pairs")


@pytest.mark.parametrize("place", ORDINARY_PLACES)
@pytest.mark.parametrize("text", ORDINARY_TEXTS)
def test_ordinary_values_survive(text: str, place: str) -> None:
    event = TEXT_PLACES[place](text)
    assert orjson.loads(scrub_one(event)) == event


def test_ordinary_keys_and_empty_values_survive() -> None:
    event = {"extra": ORDINARY_KEYS, "contexts": {"llm": ORDINARY_KEYS, "x": EMPTY_SECRETS}}
    assert orjson.loads(scrub_one(event)) == event
    assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == event


def test_realistic_events_lose_every_planted_secret_and_nothing_else() -> None:
    payloads = realistic_payloads(600, seed=3, personal_share=0.5)
    out = scrub_payloads(raw_events(payloads), {})["payload"].to_list()
    for before, after in zip(payloads, out, strict=True):
        assert not [secret for secret in SECRETS if secret in after], after
        if not any(secret in before for secret in SECRETS):
            assert after == before  # untouched, byte for byte
        reference = scrub_event_json(before, client_ip="203.0.113.7")
        assert decoded(orjson.loads(after)) == decoded(orjson.loads(reference))


# --- Odd shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("event", "expected"), [
    pytest.param({"extra": {"password": 12345, "cvv": 1.5, "token": None, "auth": True,
                            "secret": "", "pwd": False}},
                 {"extra": {"password": MARKER, "cvv": MARKER, "token": None, "auth": True,
                            "secret": "", "pwd": False}}, id="scalars"),
    pytest.param({"extra": {"credentials": {"user": "jane", "pass": ["a", "b", 3, None]}}},
                 {"extra": {"credentials": {"user": MARKER,
                                            "pass": [MARKER, MARKER, MARKER, None]}}},
                 id="containers-keep-their-shape"),
    pytest.param({"request": {"cookies": [["sessionid", "abc"], ["theme", "dark"]]}},
                 {"request": {"cookies": [["sessionid", MARKER], ["theme", MARKER]]}},
                 id="cookie-pairs-keep-names"),
    pytest.param({"request": {"headers": [["Authorization", "Bearer abc"], ["X-A", "b", "c"]]}},
                 {"request": {"headers": [["Authorization", MARKER], ["X-A", "b", "c"]]}},
                 id="header-pairs"),
    pytest.param({"request": {"data": "a=1&password=p%40ss,word&b=2"}},
                 {"request": {"data": f"a=1&password={MARKER}&b=2"}}, id="form-with-comma"),
    pytest.param({"request": {"data": '{"user": {"password": "x"}, "n": [1, 2]}'}},
                 {"request": {"data": '{"user":{"password":"[Filtered]"},"n":[1,2]}'}},
                 id="json-text-body"),
    pytest.param({"message": "cfg password = 'a b c' and token: \"x y\""},
                 {"message": f"cfg password = '{MARKER}' and token: \"{MARKER}\""},
                 id="quoted-values"),
    pytest.param({"logentry": {"message": "auth %s: password=%s, retry %d",
                               "params": ["jane", "hunter2", 3]}},
                 {"logentry": {"message": "auth %s: password=%s, retry %d",
                               "params": ["jane", MARKER, 3]}}, id="template-kept"),
    pytest.param({"extra": {"ids": [[1, 2], ["a", "b"]], "matrix": [[["x"]]]}},
                 {"extra": {"ids": [[1, 2], ["a", "b"]], "matrix": [[["x"]]]}},
                 id="lists-of-lists"),
    pytest.param({"extra": {"jane.doe@example.com": 1}}, {"extra": {MARKER: 1}},
                 id="email-as-key"),
    pytest.param({"extra": {"card": 4111111111111111, "id": 4111111111111112}},
                 {"extra": {"card": MARKER, "id": 4111111111111112}}, id="card-as-number"),
    pytest.param({"user": {"id": "4111111111111111", "username": "jane", "name": "Jane",
                           "email": "not-an-address", "ip_address": "198.51.100.4"}},
                 {"user": {"id": "4111111111111111", "username": "jane", "name": "Jane",
                           "email": MARKER, "ip_address": "198.51.100.4"}},
                 id="user-fields"),
    pytest.param({"extra": {"cards": ["4111111111111111", "5500000000000004"],
                            "pair": ["password", "x"], "words": ["not found", 404]}},
                 {"extra": {"cards": [MARKER, MARKER], "pair": ["password", MARKER],
                            "words": ["not found", 404]}}, id="pairs-and-lists"),
])
def test_odd_shapes(event: Event, expected: Event) -> None:
    assert orjson.loads(scrub_one(event)) == expected
    assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == expected


@pytest.mark.parametrize("payload", [
    '[1, 2, {"password": "x"}]', '"jane@example.com"', "42", "null", "not json {", "", "{",
])
def test_payloads_that_are_not_json_objects_are_left_as_they_are(payload: str) -> None:
    assert scrub_one(payload) == payload


def test_broken_objects_still_get_the_text_rules() -> None:
    # Ingest validates events, so this is defence in depth: better filtered than left.
    assert scrub_one('{"message": "jane@example.com", "x": ') == f'{{"message": "{MARKER}", "x": '


def test_null_payloads_and_empty_frames() -> None:
    frame = raw_events([None, '{"password": "x"}'])
    assert scrub_payloads(frame, {})["payload"].to_list() == [None, f'{{"password": "{MARKER}"}}']
    empty = raw_events([]).clear()
    assert scrub_payloads(empty, {}).equals(empty)


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_unicode_messages(ensure_ascii: bool) -> None:
    event = {"message": "Zahlung für Jürgen (jürgen@bücher.de) mit 4111 1111 1111 1111 🚫",
             "exception": {"values": [{"type": "Ошибка", "value": "пользователь 東京 ✓"}]},
             "tags": {"città": "Köln", "סיסמה": "שלום"}, "extra": {"عنوان": "مرحبا"}}
    out = orjson.loads(scrub_one(json.dumps(event, ensure_ascii=ensure_ascii)))
    assert out["message"] == f"Zahlung für Jürgen ({MARKER}) mit {MARKER} 🚫"
    assert {key: out[key] for key in ("exception", "tags", "extra")} == {
        key: event[key] for key in ("exception", "tags", "extra")}


def test_what_orjson_refuses_is_still_scrubbed_and_written_readably() -> None:
    # NaN is no JSON, a lone surrogate is valid JSON text but not valid UTF-8: the rest of the
    # pipeline reads the event only once they are null and U+FFFD.
    out = scrub_one('{"extra": {"ratio": NaN, "password": "x", "s": "\\ud800"}}')
    assert orjson.loads(out) == {"extra": {"ratio": None, "password": MARKER, "s": "\ufffd"}}


def test_deep_nesting_is_cut_not_crashing() -> None:
    event: Event = {"password": "deep-secret"}
    for _ in range(400):
        event = {"a": [event]}
    out = scrub_one(json.dumps({"extra": event, "message": "jane@example.com"}))
    assert "deep-secret" not in out and "jane@example.com" not in out
    assert orjson.loads(out)["message"] == MARKER


def test_big_integers_survive() -> None:
    event = '{"extra": {"big": 123456789012345678901234567890, "n": 1}}'
    assert scrub_one(event) == event


# --- JSON escapes -------------------------------------------------------------------------

# Pieces of text, glued together at random: secrets, and what surrounds them in the JSON text
# with an escape (quotes, backslashes, newlines, non-ASCII, control characters).
FRAGMENTS = (
    "jane@example.com", "ü@ü.de", "4111 1111 1111 1111", "5500-0000-0000-0004",
    "Bearer abc.def123", "Basic dXNlcjpwYXNz", "Token 9944b09199c62bcf", "password=hunter2",
    "https://u:pw9@h.example.com/x", "123-45-6789", "GB82 WEST 1234 5698 7654 32",
    "AT61 1904 3002 3457 3201", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
    "secret: ", "api_key=", "%s", "sessionid", "token", "\n", "\\", '"', "/", "//", "é", "東",
    "🚀", " ", "\t", "\x01", "\u00a0", "\u2028", "x", ":", "=", "n", "u", "\\n", "\\u0041", "'",
    ",", "&", "?", "@", ".", "{", "}", "[", "]",
)
# What must not survive of each secret when the reference path filters it.
SECRET_PARTS = ("jane@example.com", "ü@ü.de", "4111 1111 1111 1111", "5500-0000-0000-0004",
                "abc.def123", "dXNlcjpwYXNz", "9944b09199c62bcf", "hunter2", "pw9",
                "123-45-6789", "5698 7654", "1904 3002")
ENCODINGS: dict[str, Callable[[Event], str]] = {
    "orjson": lambda e: orjson.dumps(e).decode(),
    "ascii": lambda e: json.dumps(e),  # Python's default: \uXXXX for all non-ASCII
    "php": lambda e: json.dumps(e).replace("/", "\\/"),  # PHP escapes slashes too
    "go": lambda e: json.dumps(e, ensure_ascii=False).replace("&", "\\u0026"),
    "pretty": lambda e: json.dumps(e, indent=2, ensure_ascii=False),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_escapes_never_break_the_json_nor_hide_secrets(encoding: str) -> None:
    rng = random.Random(encoding)
    texts = ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 8)))
             for _ in range(1500)]
    payloads = [ENCODINGS[encoding]({"message": text, "extra": {"k": [text], "d": {"v": text}}})
                for text in texts]
    out = scrub_payloads(raw_events(payloads), {})["payload"].to_list()
    for text, payload, after in zip(texts, payloads, out, strict=True):
        fast = json.loads(after)  # valid JSON, whatever the escapes
        reference = json.loads(scrub_event_json(payload))
        if encoding in ("orjson", "pretty"):
            assert fast == reference, (text, after)
        else:
            # With \uXXXX escapes the regexes may take an escaped neighbour along, but what
            # the reference filters is filtered.
            leaked = [part for part in SECRET_PARTS
                      if part in fast["message"] and part not in reference["message"]]
            assert not leaked, (text, after, reference)


# Key names for random events: sensitive or not, with separators, case, Unicode, spaces.
FUZZ_KEYS = ("password", "Password", "user_password", "X-Api-Key", "api key", "apiKey", "token",
             "tokens", "tokenId", "auth", "author", "Authorization", "oauth", "Cookie",
             "session", "sessions", "session_id", "PHPSESSID", "pass", "bypass", "ssn", "card",
             "card_number", "cvv", "note", "message", "data", "id", "email", "ip_address",
             "X-Forwarded-For", "REMOTE_ADDR", "pass word", "clé_secret", "пароль_password",
             "séssion", 'a"password', "a\\token", "", "headers", "user", "username")


def random_event(rng: random.Random) -> Event:
    def text() -> str:
        return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 4)))

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 3 or roll < 0.35:
            return text()
        if roll < 0.45:
            return rng.choice([0, 7, -3, 2.5, True, False, None, 4111111111111111,
                               4111111111111112])
        if roll < 0.65:
            return {rng.choice(FUZZ_KEYS): value(depth + 1) for _ in range(rng.randint(0, 4))}
        if roll < 0.8:
            return [rng.choice(FUZZ_KEYS), value(depth + 1)]
        return [value(depth + 1) for _ in range(rng.randint(0, 3))]

    event: Event = {rng.choice(FUZZ_KEYS): value(0) for _ in range(rng.randint(1, 5))}
    if rng.random() < 0.2:
        event["user"] = {"id": text(), "email": text(),
                         "ip_address": rng.choice(["{{auto}}", "198.51.100.4", "fe80::1", text()])}
    if rng.random() < 0.1:
        event["logentry"] = {"message": rng.choice(["password=%s", "user %s token: %s", "x {}"]),
                             "params": [text(), text()]}
    return event


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_random_events_agree_with_the_reference(encoding: str) -> None:
    """Random shapes, keys and texts, several projects: the fast path filters what the
    all-Python reference filters, and (without \\uXXXX escapes) exactly that."""
    rng = random.Random(f"events-{encoding}")
    events = [random_event(rng) for _ in range(600)]
    payloads = [ENCODINGS[encoding](event) for event in events]
    projects = [rng.randint(1, 4) for _ in events]
    ips = [rng.choice(["203.0.113.7", "", "::1"]) for _ in events]
    configs = {2: ScrubConfig(ip_mode="hash", hash_salt="s"), 3: ScrubConfig(ip_mode="drop"),
               4: ScrubConfig(safe_fields=("note", "token"))}
    out = scrub_payloads(raw_events(payloads, projects, ips), configs)["payload"].to_list()
    for payload, after, project, ip in zip(payloads, out, projects, ips, strict=True):
        fast = json.loads(after)
        reference = json.loads(scrub_event_json(payload, configs.get(project, ScrubConfig()), ip))
        if encoding in ("orjson", "pretty"):
            assert fast == reference, (payload, after)
        else:
            fast_text = json.dumps(fast, ensure_ascii=False)
            reference_text = json.dumps(reference, ensure_ascii=False)
            assert not [part for part in SECRET_PARTS
                        if part in fast_text and part not in reference_text], (payload, after)


def test_escape_neighbours_exactly() -> None:
    text = 'a\njane@example.com\t"Bearer x9y8z7w6"\\https://u:p4ss@h.io/\u00e9'
    expected = f'a\n{MARKER}\t"Bearer {MARKER}"\\https://u:{MARKER}@h.io/\u00e9'
    assert orjson.loads(scrub_one({"message": text}))["message"] == expected
    assert scrub_text(text) == expected


# --- Per-project settings -----------------------------------------------------------------

def test_ip_modes_apply_to_client_ip_and_the_event() -> None:
    event = orjson.dumps({
        "user": {"id": "7", "ip_address": "198.51.100.4"},
        "request": {"headers": {"X-Forwarded-For": "198.51.100.4, 10.0.0.1"},
                    "env": {"REMOTE_ADDR": "198.51.100.4"}},
    }).decode()
    auto = orjson.dumps({"user": {"id": "7", "ip_address": "{{auto}}"}}).decode()
    frame = raw_events([event, auto] * 4, project_ids=[1, 1, 2, 2, 3, 3, 4, 4],
                       client_ips=["203.0.113.7", "203.0.113.8"] * 3 + ["", ""])
    configs = {2: ScrubConfig(ip_mode="hash", hash_salt="install-a"),
               3: ScrubConfig(ip_mode="drop"), 4: ScrubConfig(ip_mode="hash")}
    out = scrub_payloads(frame, configs)
    ips = out["client_ip"].to_list()
    events = [orjson.loads(payload) for payload in out["payload"]]

    # Project 1 has no settings: keep, and "{{auto}}" becomes the sender's IP.
    assert ips[:2] == ["203.0.113.7", "203.0.113.8"]
    assert events[0] == orjson.loads(event)
    assert events[1]["user"]["ip_address"] == "203.0.113.8"
    # Hash: the same salted hash wherever the address appears.
    assert ips[2:4] == [hash_ip("203.0.113.7", "install-a"), hash_ip("203.0.113.8", "install-a")]
    hashed = hash_ip("198.51.100.4", "install-a")
    assert events[2]["user"]["ip_address"] == hashed
    assert events[2]["request"]["env"]["REMOTE_ADDR"] == hashed
    assert events[2]["request"]["headers"]["X-Forwarded-For"] == hash_ip(
        "198.51.100.4, 10.0.0.1", "install-a")
    assert events[3]["user"]["ip_address"] == ips[3]
    assert hash_ip("198.51.100.4", "install-b") != hashed
    # Drop: empty client_ip and user.ip_address, filtered headers.
    assert ips[4:6] == ["", ""]
    assert events[4]["user"]["ip_address"] == ""
    assert events[4]["request"]["headers"]["X-Forwarded-For"] == MARKER
    assert events[5]["user"]["ip_address"] == ""
    # No client IP known: nothing to hash.
    assert ips[6:] == ["", ""] and events[7]["user"]["ip_address"] == ""
    assert "198.51.100.4" not in "".join(out["payload"][2:6])


def test_extra_patterns_and_safe_fields_are_per_project() -> None:
    event = {"message": "ticket ACME-123456 for jane@example.com",
             "extra": {"session_replay_id": "r-77", "password": "x", "note": "ACME-654321"},
             "request": {"query_string": "session_replay_id=r-77&token=t1"}}
    payload = orjson.dumps(event).decode()
    frame = raw_events([payload] * 3, project_ids=[1, 2, 3])
    configs = {1: ScrubConfig(extra_patterns=(r"ACME-\d{6}",)),
               2: ScrubConfig(safe_fields=("Session_Replay_ID",))}
    first, second, third = (orjson.loads(p) for p in scrub_payloads(frame, configs)["payload"])

    assert first["message"] == f"ticket {MARKER} for {MARKER}"
    assert first["extra"] == {"session_replay_id": MARKER, "password": MARKER, "note": MARKER}
    assert second["message"] == f"ticket ACME-123456 for {MARKER}"
    assert second["extra"] == {"session_replay_id": "r-77", "password": MARKER,
                               "note": "ACME-654321"}
    assert second["request"]["query_string"] == f"session_replay_id=r-77&token={MARKER}"
    assert third["extra"]["session_replay_id"] == MARKER
    assert third["extra"]["note"] == "ACME-654321"


def test_safe_fields_are_never_filtered() -> None:
    config = ScrubConfig(safe_fields=("support_email",))
    event = {"extra": {"support_email": "help@example.com", "email": "jane@example.com"}}
    assert orjson.loads(scrub_one(event, config))["extra"] == {
        "support_email": "help@example.com", "email": MARKER}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ip_mode": "mask"}, "ip_mode"), ({"extra_patterns": ("([a-z",)}, "invalid extra pattern"),
])
def test_invalid_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScrubConfig(**kwargs)


# --- Text, keys, checksums ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("contact jane@example.com", f"contact {MARKER}"),
    ("Ошибка для пользователя иван@пример.рф", f"Ошибка для пользователя {MARKER}"),
    ("注文 4111-1111-1111-1111 失敗 🚫", f"注文 {MARKER} 失敗 🚫"),
    ("IBAN DE89 3704 0044 0532 0130 00 FOR RENT", f"IBAN {MARKER} FOR RENT"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y", f"Authorization: {MARKER}"),
    ("redis://:hunter2@cache:6379/0", f"redis://:{MARKER}@cache:6379/0"),
    ("https://key@o1.ingest.example.com/1", f"https://{MARKER}/1"),  # user@host: an email
    ("2024 4111 1111 1111 1111", f"2024 {MARKER}"),
    ("sessionid=abc; theme=dark", f"sessionid={MARKER}; theme=dark"),
    ("user: password: %s", "user: password: %s"),
    ("Token token=abc", f"Token token={MARKER}"),
    # A pair right after an ordinary key's separator.
    ("login: password = hunter2", f"login: password = {MARKER}"),
    ("msg:token: abc", f"msg:token: {MARKER}"),
    ("", ""),
    (MARKER, MARKER),
])
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected
    assert scrub_text(expected) == expected  # idempotent


def test_scrub_text_uses_the_projects_settings() -> None:
    config = ScrubConfig(extra_patterns=(r"(?i)acme-\d+",), safe_fields=("token",))
    assert scrub_text("ACME-42 token=abc password=x", config) == (
        f"{MARKER} token=abc password={MARKER}")


@pytest.mark.parametrize("key", SENSITIVE_KEYS + (
    "oauth", "OAuthToken", "mysql_pwd", "db_pass", "sessionId", "JSESSIONID", "jwt",
    "api-key", "apiKey", "x-auth-token", "privateKey", "cardNumber", "cvc", "session_replay_id",
    "authKey", "auth_header", "authData", "sessionData", "tokenValue", "access_key",
    "aws_access_key_id", "AccessKey", "Authentication"))
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", [*ORDINARY_KEYS, "user", "username", "email", "id", "name",
                                 "compass", "keyboard"])
def test_ordinary_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and iban_valid("GB82WEST12345698765432")
    assert iban_valid("NO9386011117947")  # the shortest country length
    assert not iban_valid("DE89370400440532013001")  # check digits
    assert not iban_valid("DE8937040044053201300")  # length
    assert not iban_valid("QQ89370400440532013000")  # country


# --- The frame contract -------------------------------------------------------------------

def test_same_columns_rows_and_order() -> None:
    payloads = [orjson.dumps({"message": f"m{i}", "extra": {"password": str(i)}}).decode()
                if i % 3 else f'{{"message": "row {i}"}}' for i in range(50)]
    frame = raw_events(payloads, project_ids=[i % 4 for i in range(50)])
    out = scrub_payloads(frame, {2: ScrubConfig(ip_mode="hash")})
    assert out.schema == frame.schema
    assert out.drop("payload", "client_ip").equals(frame.drop("payload", "client_ip"))
    assert [orjson.loads(p)["message"] for p in out["payload"]] == [
        f"m{i}" if i % 3 else f"row {i}" for i in range(50)]
    assert out["payload"][0] == payloads[0]  # nothing to filter: byte for byte
    assert frame["payload"].to_list() == payloads  # the input frame is not modified


@pytest.mark.parametrize("ip_mode", ["keep", "hash", "drop"])
def test_scrubbing_twice_changes_nothing(ip_mode: IpMode) -> None:
    # Reprocessing a time range runs the stage again over what it wrote.
    payloads = realistic_payloads(200, seed=11, personal_share=0.5)
    configs = {1: ScrubConfig(ip_mode=ip_mode, hash_salt="s")}
    once = scrub_payloads(raw_events(payloads), configs)
    assert scrub_payloads(once, configs).equals(once)


@pytest.mark.bench
def test_throughput() -> None:
    payloads = realistic_payloads(10_000)
    frame = raw_events(payloads, project_ids=[1 + i % 5 for i in range(10_000)])
    configs = {2: ScrubConfig(ip_mode="hash", hash_salt="s"), 3: ScrubConfig(ip_mode="drop")}
    scrub_payloads(frame.head(500), configs)  # warm up caches and regex compilation
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        scrub_payloads(frame, configs)
        best = min(best, time.perf_counter() - start)
    size = sum(map(len, payloads)) / len(payloads)
    print(f"\nscrub_payloads: {len(payloads) / best:,.0f} events/s "
          f"({len(payloads)} events of {size:,.0f} bytes, 10% with personal data)")


@pytest.mark.parametrize(("event", "expected"), [
    # A sensitive key's own two-item list is no [name, value] pair: both items are secret.
    ({"extra": {"password": ["old-hunter2", "new-hunter3"]}},
     {"extra": {"password": [MARKER, MARKER]}}),
    ({"request": {"headers": [["Cookie", ["sid=abc", "theme=dark"]]]}},
     {"request": {"headers": [["Cookie", [MARKER, MARKER]]]}}),
    # In a list of pairs, each pair keeps its name.
    ({"request": {"cookies": [["sid", "abc"], ["theme", "dark"]]}},
     {"request": {"cookies": [["sid", MARKER], ["theme", MARKER]]}}),
])
def test_lists_under_sensitive_keys(event: Event, expected: Event) -> None:
    assert orjson.loads(scrub_one(event)) == expected
    assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == expected


@pytest.mark.parametrize("key", ["authKey", "auth_header", "aws_access_key_id", "AccessKey",
                                 "Authentication", "sessionData", "tokenValue"])
def test_compound_sensitive_key_names(key: str) -> None:
    event = {"extra": {key: "s3cr3t"}, "request": {"query_string": f"{key}=s3cr3t&page=2"},
             "message": f"failed with {key}=s3cr3t"}
    assert orjson.loads(scrub_one(event)) == {
        "extra": {key: MARKER}, "request": {"query_string": f"{key}={MARKER}&page=2"},
        "message": f"failed with {key}={MARKER}"}


def test_url_encoded_emails() -> None:
    event = {"request": {"query_string": "email=jane.doe%40example.com&next=%2F",
                         "data": "email=jane.doe%40example.com&name=Jane",
                         "url": "https://shop.example.com/?next=%2Fjane%40example.com"},
             "message": "discount 100%40 off"}  # no domain after %40: no email
    expected = {"request": {"query_string": f"email={MARKER}&next=%2F",
                            "data": f"email={MARKER}&name=Jane",
                            "url": f"https://shop.example.com/?next={MARKER}"},
                "message": "discount 100%40 off"}
    assert orjson.loads(scrub_one(event)) == expected
    assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('{"password"=>"hunter2x"}', f'{{"password"=>"{MARKER}"}}'),  # Ruby and PHP dumps
    ("'password' => 'hunter2x'", f"'password' => '{MARKER}'"),
    ("{'password': b'hunter2x'}", f"{{'password': {MARKER}}}"),  # Python reprs
    ("{'password': u'hunter2x'}", f"{{'password': {MARKER}}}"),
    ("password='hunter2x", f"password={MARKER}"),  # a repr cut short by the SDK
    ("Cookie: theme=dark; sid=hunter2x\nAccept: */*", f"Cookie: {MARKER}\nAccept: */*"),
])
def test_key_value_in_other_languages_dumps(text: str, expected: str) -> None:
    event = {"message": text, "extra": {"note": text}}
    want = {"message": expected, "extra": {"note": expected}}
    assert orjson.loads(scrub_one(event)) == want
    assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == want


def test_ip_fields_of_proxies_cdns_and_sdks_follow_the_ip_mode() -> None:
    ip = "203.0.113.77"
    fields = {"request": {"env": {"HTTP_X_FORWARDED_FOR": ip, "REMOTE_ADDR": ip},
                          "headers": {"Fastly-Client-IP": ip, "X-Envoy-External-Address": ip,
                                      "x-vercel-forwarded-for": ip, "CF-Connecting-IPv6": ip,
                                      "X-Original-Forwarded-For": ip}},
              "sdk": {"client_ip": ip}, "contexts": {"edge": {"client_ip": ip}},
              "tags": [["client_ip", ip]], "extra": {"ip_address_count": 3}}
    for mode, replaced in (("drop", MARKER), ("hash", hash_ip(ip, "s3"))):
        config = ScrubConfig(ip_mode=mode, hash_salt="s3")
        out = orjson.loads(scrub_one(fields, config, client_ip=ip))
        assert ip not in orjson.dumps(out).decode(), mode
        assert out["request"]["env"]["HTTP_X_FORWARDED_FOR"] == replaced
        assert out["sdk"]["client_ip"] == replaced
        assert out["extra"] == {"ip_address_count": 3}  # a count, not an address
    assert orjson.loads(scrub_one(fields, ScrubConfig(ip_mode="keep"), client_ip=ip)) == fields


def test_extra_patterns_also_cover_keys_and_the_user_id() -> None:
    event = {"extra": {"EMP-123456": "x", "note": "EMP-654321"},
             "user": {"id": "EMP-123456", "username": "EMP-1"}}
    config = ScrubConfig(extra_patterns=(r"EMP-\d{6}",))
    expected = {"extra": {MARKER: "x", "note": MARKER}, "user": {"id": MARKER, "username": "EMP-1"}}
    assert orjson.loads(scrub_one(event, config)) == expected
