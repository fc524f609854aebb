"""Two ways a secret slipped past the scrubber (issue 5): a sensitive `key=value` pair that is
itself URL-encoded (a redirect target in a query string, a form body sent as a value), and
an object holding the same key twice, whose earlier value the parsed event no longer has
but the payload text, stored as it came when the walk changed nothing, still did."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from pipelines.scrubbing import MARKER, ScrubConfig, scrub_event_json, scrub_payloads, scrub_text
from tests.pipelines.test_scrubbing import raw_events, scrub_one

Event = dict[str, Any]

# --- URL-encoded pairs ----------------------------------------------------------------------

# Where encoded text turns up: query strings, form bodies, URLs, breadcrumbs, messages,
# extra, contexts.
PLACES: dict[str, Callable[[str], Event]] = {
    "request.query_string": lambda t: {"request": {"query_string": f"page=2&{t}"}},
    "request.query-pairs": lambda t: {"request": {"query_string": [["page", "2"],
                                                                   t.split("=", 1)]}},
    "request.data-form": lambda t: {"request": {"data": f"user=jane&{t}&remember=1"}},
    "request.url": lambda t: {"request": {"url": f"https://shop.example.com/login?{t}"}},
    "breadcrumb.message": lambda t: {"breadcrumbs": {"values": [{"message": f"GET /login?{t}"}]}},
    "breadcrumb.data-url": lambda t: {"breadcrumbs": [{"category": "http", "data": {
        "url": f"/login?{t}", "status_code": 302}}]},
    "exception.value": lambda t: {"exception": {"values": [
        {"type": "ValueError", "value": f"bad redirect {t} for jane"}]}},
    "message": lambda t: {"message": f"redirecting: {t}"},
    "extra": lambda t: {"extra": {"redirect": t}},
    "contexts": lambda t: {"contexts": {"app": {"referrer": t}}},
}
# (the pair as sent, as it must come out): the secret goes, the rest stays readable.
FORMS: dict[str, tuple[str, str]] = {
    "nested-query": ("next=%2Flogin%3Fpassword%3Dhunter2",
                     f"next=%2Flogin%3Fpassword%3D{MARKER}"),
    "form-in-value": ("data=password%3Dhunter2%26user%3Dbob",
                      f"data=password%3D{MARKER}%26user%3Dbob"),
    "bare": ("q=token%3Dabc123", f"q=token%3D{MARKER}"),
    "lowercase": ("q=api_key%3dabc123%26page%3d2", f"q=api_key%3d{MARKER}%26page%3d2"),
    "double-encoded": ("next=%252Fcb%253Faccess_token%253Dya29xyz%2526x%253D1",
                       f"next=%252Fcb%253Faccess_token%253D{MARKER}%2526x%253D1"),
    "json-in-url": ("state=%7B%22client_secret%22%3A%22abc123%22%2C%22n%22%3A1%7D",
                    f"state=%7B%22client_secret%22%3A%22{MARKER}%22%2C%22n%22%3A1%7D"),
    "after-ordinary-key": ("r=%2Fa%3Fx%3Dsecret%3Dhunter2", f"r=%2Fa%3Fx%3Dsecret%3D{MARKER}"),
    "auth-scheme": ("h=authorization%3ABearer%20abc123def", f"h=authorization%3A{MARKER}"),
    "space-ends-it": ("r=session%3Dabc123+ok", f"r=session%3D{MARKER}+ok"),
    "after-a-lone-percent": ("q=100%secret%3Dhunter2", f"q=100%secret%3D{MARKER}"),
}
SECRETS = ("hunter2", "abc123", "ya29xyz")


Placed = dict[tuple[str, str], tuple[str, str]]


def placed_cases(places: dict[str, Callable[[str], Event]],
                 forms: dict[str, tuple[str, str]]) -> list[Any]:
    return [pytest.param(place, form, id=f"{form}-in-{place}")
            for place in places for form in forms]


def scrub_placed(places: dict[str, Callable[[str], Event]],
                 forms: dict[str, tuple[str, str]]) -> Placed:
    """Every form in every place, scrubbed in one batch (as the pipeline scrubs them) and by
    the reference path: (place, form) -> (pipeline's output, reference's output)."""
    keys = [(place, form) for place in places for form in forms]
    payloads = [orjson.dumps(places[place](forms[form][0])).decode() for place, form in keys]
    out = scrub_payloads(raw_events(payloads), {})["payload"].to_list()
    return {key: (fast, scrub_event_json(payload, client_ip="203.0.113.7"))
            for key, payload, fast in zip(keys, payloads, out, strict=True)}


def assert_scrubbed(outputs: tuple[str, str], secrets: tuple[str, ...], expected: Event) -> None:
    for out in outputs:
        assert not [secret for secret in secrets if secret in out], out
        assert orjson.loads(out) == expected


@pytest.fixture(scope="module")
def scrubbed() -> Placed:
    return scrub_placed(PLACES, FORMS)


@pytest.mark.parametrize(("place", "form"), placed_cases(PLACES, FORMS))
def test_encoded_pairs_lose_their_value(place: str, form: str, scrubbed: Placed) -> None:
    assert_scrubbed(scrubbed[(place, form)], SECRETS, PLACES[place](FORMS[form][1]))


@pytest.mark.parametrize("text", [
    "next=%2Fhome%3Fpage%3D2%26sort%3Dasc",
    "q=max_tokens%3D5%26author%3DJane%26bypass%3D1",
    "redirect=https%3A%2F%2Fshop.example.com%2Fcart%3Fid%3D5",
    "r=%2Flogin%3Ftoken%3Dexpired",  # a credential's state, as in plain text
    "tpl=password%3D%25s",  # a placeholder
    "discount 100%3D 50%25 off, 3%3D4",
    "a%3Dpassword_reset%26b%3D2",  # the key is sensitive, not the value
    "%3Dtoken",
    "50%25%3A%20session",
])
def test_ordinary_encoded_text_survives(text: str) -> None:
    for event in (PLACES["request.query_string"](text), PLACES["message"](text),
                  PLACES["extra"](text)):
        assert orjson.loads(scrub_one(event)) == event
        assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == event
    assert scrub_text(text) == text


def test_encoded_pairs_scrubbed_twice_change_nothing() -> None:
    payloads = [orjson.dumps(PLACES[place](FORMS[form][0])).decode()
                for place in PLACES for form in FORMS]
    once = scrub_payloads(raw_events(payloads), {})
    assert scrub_payloads(once, {}).equals(once)


def test_safe_fields_apply_to_encoded_pairs() -> None:
    event = {"message": "r=%2Fa%3Fcsrf%3Dabc123%26password%3Dhunter2"}
    config = ScrubConfig(safe_fields=("csrf",))
    assert orjson.loads(scrub_one(event, config)) == {
        "message": f"r=%2Fa%3Fcsrf%3Dabc123%26password%3D{MARKER}"}


# --- A key repeated in one object -----------------------------------------------------------

# Payloads as SDKs (or hand-written JSON) may send them: parsing keeps the last value.
REPEATED: dict[str, str] = {
    "email": '{"extra": {"note": "mail me at bob@example.com", "note": "ok"}}',
    "card": '{"extra": {"note": "card 4111 1111 1111 1111", "note": "ok"}}',
    "ssn": '{"extra": {"note": "ssn 123-45-6789", "note": "ok"}}',
    "iban": '{"extra": {"note": "to DE89370400440532013000", "note": "ok"}}',
    "password": '{"extra": {"password": "x", "password": "y"}}',
    "password-then-empty": '{"extra": {"password": "hunter2", "password": ""}}',
    "password-then-null": '{"extra": {"password": "hunter2", "password": null}}',
    "password-then-marker": '{"extra": {"password": "hunter2", "password": "[Filtered]"}}',
    "user.email": '{"user": {"id": "7", "email": "bob", "email": "[Filtered]"}}',
    "key-value": '{"extra": {"note": "x password=hunter2", "note": "ok"}}',
    "whole-object": '{"extra": {"note": "4111 1111 1111 1111"}, "extra": {"note": "ok"}}',
    "json-in-text": '{"request": {"data": '
                    '"{\\"note\\": \\"4111 1111 1111 1111\\", \\"note\\": \\"ok\\"}"}}',
}
LEFT = ("bob@example.com", "4111 1111", "123-45-6789", "DE8937", "hunter2", '"x"', '"bob"')
# Ways an event reaches the walk: the fast path alone; with a safe field or a container under
# a sensitive key (the event then gets every rule in Python); the reference path.
ROUTES: dict[str, Callable[[str], str]] = {
    "fast": lambda p: scrub_one(p),
    "safe-field": lambda p: scrub_one(p, ScrubConfig(safe_fields=("release",))),
    "container": lambda p: scrub_one(p[:-1] + ', "auth": []}'),
    "reference": lambda p: scrub_event_json(p),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", REPEATED)
def test_a_repeated_key_keeps_no_secret_in_the_text(case: str, route: str) -> None:
    payload = REPEATED[case]
    if route == "safe-field":
        payload = payload[:-1] + ', "release": "shop@1.0"}'
    out = ROUTES[route](payload)
    assert not [left for left in LEFT if left in out], out
    # What the parsed event holds is scrubbed as it would be without the repeat.
    assert orjson.loads(out) == orjson.loads(ROUTES[route](orjson.dumps(
        orjson.loads(payload)).decode()))


def test_a_repeated_ip_field_follows_the_ip_mode() -> None:
    payload = '{"user": {"id": "7", "ip_address": "198.51.100.4", "ip_address": ""}}'
    out = scrub_one(payload, ScrubConfig(ip_mode="drop"))
    assert "198.51.100.4" not in out
    assert orjson.loads(out) == {"user": {"id": "7", "ip_address": ""}}


@pytest.mark.parametrize("payload", [
    '{"extra": {"note": "ok"}, "message": "card 4111 1111 1111 1112"}',  # fails Luhn
    '{\n  "extra": {"a:b": "c:d", "n": "4111 1111 1111 1112"}\n}',
    '{"extra": {"t": "12:30", "n": "4111 1111 1111 1112", "e": "\\u003a"}}',
])
def test_an_unchanged_event_without_repeats_keeps_its_text(payload: str) -> None:
    # The walk ran (a number candidate) and changed nothing: the text stays as it came.
    assert scrub_one(payload) == payload
    assert scrub_event_json(payload) == payload


@pytest.mark.parametrize("in_text", [False, True], ids=["event", "json-in-text"])
@pytest.mark.parametrize(("card", "changed"), [("4111 1111 1111 1111", True),
                                               ("4111 1111 1111 1112", False)])
def test_a_safe_field_deeper_than_json_writers_go(card: str, changed: bool,
                                                  in_text: bool) -> None:
    # The walk leaves a safe field's value alone, at any depth; writing the event again
    # (orjson writes 254 levels) failed the batch.
    deep = "[" * 300 + '"x"' + "]" * 300
    body = f'{{"note": "card {card}", "keep": {deep}}}'
    payload = (orjson.dumps({"request": {"data": body}}).decode() if in_text
               else f'{{"extra": {body}}}')
    out = scrub_one(payload, ScrubConfig(safe_fields=("keep",)))
    if changed:
        parsed = orjson.loads(out)
        note = orjson.loads(parsed["request"]["data"]) if in_text else parsed["extra"]
        assert note["note"] == f"card {MARKER}"
    else:
        assert out == payload


# Pieces of encoded text, glued at random: sensitive and ordinary keys, separators plain,
# encoded and encoded twice, what ends a value, escapes, and the marker.
PIECES = (
    "password", "token", "api_key", "Session", "pass", "bypass", "max_tokens", "next", "q",
    "x", "hunter2", "abc123", "%3D", "%3d", "%3A", "%253D", "=", ":", "&", "%26", "%2526",
    "%20", "+", "%22", "%27", "%2F", "%3F", "%25", "%", "%s", "%2", "Bearer", ",", ";", " ",
    "expired", MARKER, "é", "\\", '"', "?", "/",
)


def test_random_encoded_text_agrees_with_the_reference() -> None:
    rng = random.Random(20261128)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 10)))
             for _ in range(3000)]
    payloads = [orjson.dumps({"message": t, "request": {"query_string": [["q", t]]},
                              "extra": {"n": [t]}}).decode() for t in texts]
    once = scrub_payloads(raw_events(payloads), {})
    for payload, out in zip(payloads, once["payload"].to_list(), strict=True):
        assert orjson.loads(out) == orjson.loads(scrub_event_json(payload)), (payload, out)
    assert scrub_payloads(once, {}).equals(once)
