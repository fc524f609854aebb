"""URL-encoded pairs the first fix (test_scrubbing_encoded.py) still let through: a quoted
value holding a space (raw, `%20` or `+`), an `&` or an escaped quote was cut there; a cookie
header kept every cookie after the first; text encoded three times or more was not read at
all, nor a short key (`pass`) after an escape encoded twice; a value whose own characters are
encoded one level deeper than its `=` (`password%3Dab%2526cd`, the password `ab&cd` in a
redirect target) was cut at them; JSON encoded by `encodeURI`, which leaves `:` and `,` as
they are, was not read."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from pipelines.scrubbing import MARKER, ScrubConfig, scrub_event_json, scrub_payloads, scrub_text
from tests.pipelines.test_scrubbing import raw_events, scrub_one
from tests.pipelines.test_scrubbing_encoded import PLACES as FIRST_PLACES
from tests.pipelines.test_scrubbing_encoded import (
    Placed,
    assert_scrubbed,
    placed_cases,
    scrub_placed,
)

Event = dict[str, Any]
F = MARKER

PLACES: dict[str, Callable[[str], Event]] = {
    **FIRST_PLACES,
    "frame.vars": lambda t: {"exception": {"values": [{"type": "KeyError", "stacktrace": {
        "frames": [{"function": "login", "vars": {"next_url": t}}]}}]}},
}

# (the text as sent, as it must come out), by leak.
FORMS: dict[str, tuple[str, str]] = {
    # 1. A quoted value runs to its closing quote, whatever it holds.
    "quoted-raw-space": ("q=password%3D%22hunter zebra%22", f"q=password%3D%22{F}%22"),
    "json-raw-space": ("q=%22password%22%3A%22hunter zebra%22",
                       f"q=%22password%22%3A%22{F}%22"),
    "json-object-raw-space": (
        "state=%7B%22client_secret%22%3A%20%22hunter zebra%22%2C%22n%22%3A1%7D",
        f"state=%7B%22client_secret%22%3A%20%22{F}%22%2C%22n%22%3A1%7D"),
    "single-quoted-raw-space": ("q=password%3D%27hunter zebra%27", f"q=password%3D%27{F}%27"),
    "quoted-raw-space-twice-encoded": (
        "next=%252Fcb%253Fpassword%253D%2522hunter zebra%2522%2526x%253D1",
        f"next=%252Fcb%253Fpassword%253D%2522{F}%2522%2526x%253D1"),
    "quoted-encoded-space": ("q=password%3D%22hunter%20zebra%22", f"q=password%3D%22{F}%22"),
    "quoted-plus-space": ("q=%22password%22%3A%22hunter+zebra%22",
                          f"q=%22password%22%3A%22{F}%22"),
    "quoted-ampersand": ("q=%22token%22%3A%22hunter%26zebra%22%2C%22n%22%3A1",
                         f"q=%22token%22%3A%22{F}%22%2C%22n%22%3A1"),
    "quoted-escaped-quote": ("q=%22password%22%3A%22hunter%5C%22 zebra%22",
                             f"q=%22password%22%3A%22{F}%22"),
    "quoted-mixed-case": ("q=%22password%22%3a%22hunter zebra%22%2c%22Token%22%3A%22abc123%22",
                          f"q=%22password%22%3a%22{F}%22%2c%22Token%22%3A%22{F}%22"),
    "quoted-spaces-around-separator": ("q=%22password%22+%3A+%22hunter zebra%22",
                                       f"q=%22password%22+%3A+%22{F}%22"),
    "plain-quotes-after-encoded-separator": ('q=password%3D"hunter zebra"',
                                             f'q=password%3D"{F}"'),
    # encodeURI leaves `:` and `,` plain: {"password":"hunter zebra","n":1}
    "encodeURI-json": ("state=%7B%22password%22:%22hunter%20zebra%22,%22n%22:1%7D",
                       f"state=%7B%22password%22:%22{F}%22,%22n%22:1%7D"),
    "encodeURI-json-raw-space": ("state=%7B%22password%22:%22hunter zebra%22%7D",
                                 f"state=%7B%22password%22:%22{F}%22%7D"),
    # 2. Every cookie of an encoded cookie header goes, to the header's end.
    "cookie-header": ("h=Cookie%3A%20theme%3Ddark%3B%20sid%3Dabc123", f"h=Cookie%3A%20{F}"),
    "cookie-plus": ("h=cookie%3Dtheme%3Ddark%3B+sid%3Dabc123%3B+uid%3Dxyz789",
                    f"h=cookie%3D{F}"),
    "cookie-then-next-header": (
        "h=Cookie%3A%20a%3Db%3B%20sid%3Dabc123%0D%0AAccept%3A%20text%2Fhtml",
        f"h=Cookie%3A%20{F}%0D%0AAccept%3A%20text%2Fhtml"),
    "set-cookie": ("h=Set-Cookie%3A%20sid%3Dabc123%3B%20Path%3D%2F%3B%20HttpOnly",
                   f"h=Set-Cookie%3A%20{F}"),
    "cookie-twice-encoded": ("h=Cookie%253A%2520theme%253Ddark%253B%2520sid%253Dabc123",
                             f"h=Cookie%253A%2520{F}"),
    "cookie-in-json": ("q=%22cookie%22%3A%22sid%3Dabc123%3B uid%3Dxyz789%22%2C%22n%22%3A1",
                       f"q=%22cookie%22%3A%22{F}%22%2C%22n%22%3A1"),
    "sensitive-cookies": ("c=session%3Dabc123%3B%20csrftoken%3Dxyz789",
                          f"c=session%3D{F}%20csrftoken%3D{F}"),
    # 3. Any depth of encoding.
    "thrice": ("q=password%25253Dhunter2", f"q=password%25253D{F}"),
    "thrice-nested": ("next=%25252Fcb%25253Faccess_token%25253Dya29xyz%252526x%25253D1",
                      f"next=%25252Fcb%25253Faccess_token%25253D{F}%252526x%25253D1"),
    "four-times": ("q=%2525252Fa%2525253Ftoken%2525253Dabc123%25252526b%2525253D2",
                   f"q=%2525252Fa%2525253Ftoken%2525253D{F}%25252526b%2525253D2"),
    "thrice-after-ampersand": ("q=a%25253D1%252526password%25253Dhunter2",
                               f"q=a%25253D1%252526password%25253D{F}"),
    "thrice-json": ("q=%252522password%252522%25253A%252522hunter zebra%252522",
                    f"q=%252522password%252522%25253A%252522{F}%252522"),
    "thrice-lowercase": ("q=password%25253dhunter2%252526n%25253d1",
                         f"q=password%25253d{F}%252526n%25253d1"),
    "short-key-twice-encoded": ("next=%252Fcb%253Fpass%253Dhunter2",
                                f"next=%252Fcb%253Fpass%253D{F}"),
    "short-key-thrice-encoded": ("next=%25252Fcb%25253Fpass%25253Dhunter2",
                                 f"next=%25252Fcb%25253Fpass%25253D{F}"),
    # A value's own characters are encoded once more than its `=`.
    "deeper-ampersand-in-value": ("next=%2Flogin%3Fpassword%3Dhunter%2526zebra%26x%3D1",
                                  f"next=%2Flogin%3Fpassword%3D{F}%26x%3D1"),
    "deeper-space-in-value": ("next=%2Flogin%3Ftoken%3Dhunter%2520zebra",
                              f"next=%2Flogin%3Ftoken%3D{F}"),
    "deeper-quote-in-value": ("next=%2Flogin%3Fpassword%3Dhunter%2522zebra%26x%3D1",
                              f"next=%2Flogin%3Fpassword%3D{F}%26x%3D1"),
    "deeper-in-twice-encoded": (
        "next=%252Flogin%253Fpassword%253Dhunter%252526zebra%2526x%253D1",
        f"next=%252Flogin%253Fpassword%253D{F}%2526x%253D1"),
}
SECRETS = ("hunter", "zebra", "abc123", "xyz789", "ya29", "dark")


@pytest.fixture(scope="module")
def scrubbed() -> Placed:
    return scrub_placed(PLACES, FORMS)


@pytest.mark.parametrize(("place", "form"), placed_cases(PLACES, FORMS))
def test_encoded_values_lose_all_of_their_value(place: str, form: str, scrubbed: Placed) -> None:
    assert_scrubbed(scrubbed[(place, form)], SECRETS, PLACES[place](FORMS[form][1]))


@pytest.mark.parametrize("form", FORMS)
def test_scrub_text_agrees(form: str) -> None:
    sent, expected = FORMS[form]
    assert scrub_text(sent) == expected
    assert scrub_text(expected) == expected


# A plain `=` before an encoded quote (a log line written with an encoded value: the whole
# quoted value goes, as an encoded quoted value without a space always did), and a quote left
# open (an SDK truncated the string): the value runs to the end of the text.
@pytest.mark.parametrize(("text", "expected"), [
    ("login failed: password=%22hunter zebra%22 for jane", f"login failed: password={F} for jane"),
    ("login failed: token = %27hunter zebra%27, retrying", f"login failed: token = {F}, retrying"),
    ("login failed: password=%22hunter zebra", f"login failed: password={F}"),
    ("login failed: password=%22hunter%22 for jane", f"login failed: password={F} for jane"),
    ("redirect: q=password%3D%22hunter zebra", f"redirect: q=password%3D%22{F}"),
    ("redirect: q=%22password%22%3A%22hunter zebra%22%7D and more",
     f"redirect: q=%22password%22%3A%22{F}%22%7D and more"),
    ("set Cookie%3A%20a%3Db%3B%20sid%3Dabc123 then 302", f"set Cookie%3A%20{F} then 302"),
    ("body %22password%22%3A%22hunter%5c%22 zebra%22%7D sent",  # a lowercase escape
     f"body %22password%22%3A%22{F}%22%7D sent"),
    ("body %22password%22%3A%22hunter%5C%5C%22 %22n%22%3A1",  # an escaped backslash
     f"body %22password%22%3A%22{F}%22 %22n%22%3A1"),
])
def test_encoded_values_in_messages(text: str, expected: str) -> None:
    places = {**{place: PLACES[place] for place in (
        "message", "extra", "breadcrumb.message", "contexts")},
        "exception": lambda t: {"exception": {"values": [{"type": "LoginError", "value": t}]}}}
    for make in places.values():
        payload = orjson.dumps(make(text)).decode()
        for out in (scrub_one(payload), scrub_event_json(payload)):
            assert orjson.loads(out) == make(expected)
    assert scrub_text(text) == expected


ORDINARY = [
    "q=%22hello world%22",
    "sort%3D%22name asc%22%26page%3D2",
    "author%3D%22Jane Doe%22%26title%3D%22A B%22",
    "next=%25252Fhome%25253Fpage%25253D2%252526sort%25253Dasc",
    "q=max_tokens%25253D5%252526bypass%25253D1%252526author%25253DJane",
    "q=order%3D4111111111111112%26v%3D1.2.3",  # an order number failing Luhn, a version
    "q=order%2525253D4111111111111112%25252526v%2525253D2.0.1-rc.1",
    "ts%3D2026-11-28T10%3A15%3A00Z%26tz%3DUTC%26ms%3D1764324900123",
    "redirect=https%3A%2F%2Fshop.example.com%2Fcart%3Fid%3D5%26sessions%3D3",
    "redirect=https%253A%252F%252Fshop.example.com%252Fcart%253Fid%253D5%2526page%253D2",
    "theme%3Ddark%3B%20lang%3Den",  # cookie-like, without a cookie key
    "state=%7B%22page%22:%22two words%22,%22n%22:1%7D",
    "q=%22token%22%3A%22expired%22",  # a credential's state
    "tpl=%22password%22%3A%22%25s%22",  # a placeholder
    "q=%22password%22%3A%22%22",  # nothing to hide
    "q=%22pass%20word%22%3A%22x y%22",
    "100%25 of %22x%22: done",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_encoded_text_survives(text: str) -> None:
    for place in ("request.query_string", "message", "extra", "contexts", "breadcrumb.message"):
        event = PLACES[place](text)
        assert orjson.loads(scrub_one(event)) == event
        assert orjson.loads(scrub_event_json(orjson.dumps(event).decode())) == event
    assert scrub_text(text) == text


def test_safe_fields_apply_to_quoted_values_and_cookies() -> None:
    config = ScrubConfig(safe_fields=("csrf", "cookie"))
    event = {"message": "q=%22csrf%22%3A%22abc 123%22%2C%22password%22%3A%22hunter zebra%22"
                        "%26h%3DCookie%3A%20theme%3Ddark%3B%20sid%3Dxyz789"}
    assert orjson.loads(scrub_one(event, config)) == {"message": (
        f"q=%22csrf%22%3A%22abc 123%22%2C%22password%22%3A%22{F}%22"
        "%26h%3DCookie%3A%20theme%3Ddark%3B%20sid%3Dxyz789")}


def test_scrubbed_twice_changes_nothing() -> None:
    payloads = [orjson.dumps(PLACES[place](FORMS[form][0])).decode()
                for place in PLACES for form in FORMS]
    once = scrub_payloads(raw_events(payloads), {})
    assert scrub_payloads(once, {}).equals(once)


PIECES = (
    "password", "pass", "token", "Cookie", "session", "sid", "next", "q", "x", "hunter",
    "%3D", "%3d", "%3A", "%253D", "%25253D", "%2525253d", "=", ":", "&", "%26", "%2526",
    "%252526", "%20", "%2520", "+", " ", "%22", "%2522", "%252522", "%27", "%5C", "%3B",
    "%3F", "%253F", "%25253F", "%25", "%2525", "%", "%s", "%0A", "%0D", ",", ";", '"',
    "%5c", "%255C", "'",
    "\\", "expired", MARKER, "é",
)


def test_random_encoded_text_agrees_with_the_reference() -> None:
    rng = random.Random(20261205)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))
             for _ in range(3000)]
    payloads = [orjson.dumps({"message": t, "request": {"query_string": [["q", t]]},
                              "contexts": {"app": {"n": [t]}}}).decode() for t in texts]
    once = scrub_payloads(raw_events(payloads), {})
    for text, payload, out in zip(texts, payloads, once["payload"].to_list(), strict=True):
        assert orjson.loads(out) == orjson.loads(scrub_event_json(payload)), (payload, out)
        assert scrub_text(scrub_text(text)) == scrub_text(text), text
    assert scrub_payloads(once, {}).equals(once)
