"""The cheap tests that pick the events an expensive trigger runs on: they must pick every
event the trigger matches, whatever the case, escapes or characters of the key."""

from __future__ import annotations

import random

import orjson
import polars as pl
import pytest

from pipelines.scrubbing import (
    _CONTAINER_HINT,
    _LONG_S,
    _STEM_LITERALS,
    _TRIGGER_CONTAINER,
    MARKER,
    ScrubConfig,
    scrub_event_json,
    scrub_payloads,
)
from tests.pipelines.test_scrubbing import raw_events

# Pieces that make and unmake stems, strings and containers, in odd cases and characters:
# the long s and the Kelvin sign (which (?i) reads as `s` and `k`), dotted capital I
# (which lowering turns into two characters), escapes, whitespace.
_PIECES = (
    "pass", "PaSs", "pa\u017fs", "word", "Token", "TOKEN", "auth", "sess", "ion", "api", "-",
    "_", " ", ".", "KEY", "\u212aey", "\u0130", "cookie", "CSRF", "jwt", "by", "x", "1",
    '"', '"', '"', "\\", '\\"', "\\n", "\\u0041", ":", ":", ",", "[", "{", "]", "}", "\n",
    "\t", "é",
)


def _random_texts(count: int, seed: int) -> list[str]:
    """Noise, and noise around `"key": {` / `["name", [` shapes with random keys."""
    rng = random.Random(seed)
    key_pieces = [piece for piece in _PIECES if piece != '"']

    def noise(most: int) -> str:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, most)))

    texts = []
    for index in range(count):
        if index % 3 == 0:
            texts.append(noise(14))
            continue
        key = "".join(rng.choice(key_pieces) for _ in range(rng.randint(1, 5)))
        space = rng.choice(("", " ", "\n", "\t", " \n"))
        texts.append(noise(4) + rng.choice(("", "[", "[ ")) + f'"{key}"{space}'
                     + rng.choice((":", ",")) + space + rng.choice(("[", "{", '"', "1"))
                     + noise(4))
    return texts


def test_the_container_hint_picks_every_event_the_trigger_matches() -> None:
    texts = pl.Series(_random_texts(40_000, seed=5) + [
        '{"Password": {"a": 1}}', '{"x": ["X-Api-Key", [1]]}', '{"pa\u017fsword": {}}',
        '{"my_\u212aey_token" : [ ]}', '{"au\\"th": {}}', '{"pass\\nword": []}',
    ])
    lowered = texts.str.to_lowercase()
    with_stem = lowered.str.contains(_STEM_LITERALS)  # the trigger runs on these only
    matched = with_stem & texts.str.contains(_TRIGGER_CONTAINER)
    picked = with_stem & (lowered.str.contains(_CONTAINER_HINT) | texts.str.contains(_LONG_S))
    assert matched.sum() > 1000  # the pieces do make matches
    missed = texts.filter(matched & ~picked).to_list()
    assert missed == []


@pytest.mark.parametrize("event", [
    {"user": {"id": "1"}, "pa\u017fsword": {"old": "hunter2"}, "request": {"url": "/?token=x1"}},
    {"PASSWORD": ["a", "b"], "message": "token=abc"},
    {"headers": [["X-Api-Key", {"v": "k1"}]], "tags": {"TOKEN": "t0k3n"}},
    {"extra": {"Session_Id": {"nested": "s1"}}, "url": "https://x/?auth=1"},
])
def test_containers_under_sensitive_keys_get_every_rule(event: dict) -> None:
    payload = orjson.dumps(event).decode()
    out = scrub_payloads(raw_events([payload]), {1: ScrubConfig()})["payload"][0]
    assert orjson.loads(out) == orjson.loads(scrub_event_json(payload, client_ip="203.0.113.7"))
    assert "hunter2" not in out and "k1" not in out and "s1" not in out


@pytest.mark.parametrize("message", [
    "line one\npassword=hunter2 and user=jane",  # an escape: not on the quick path
    "Token: abc123\nuser_token=xyz789; api_key=k3y",
    "{\"password\": \"hunter2\"}",  # JSON held in a string
    "DB_PASS=s3cret\tmode=fast",
])
def test_key_values_on_the_walk_find_their_needles(message: str) -> None:
    # Events whose pairs the walk handles look for them by the first letters of their keys,
    # worked out for the walked events only.
    event = {"message": message, "extra": {"note": "plain", "line": "a=b"},
             "user": {"email": "jane@example.com"}}
    payload = orjson.dumps(event).decode()
    frame = raw_events([payload, payload.replace("jane", "joe")])
    out = scrub_payloads(frame, {1: ScrubConfig()})["payload"].to_list()
    for before, after in zip([payload, payload.replace("jane", "joe")], out, strict=True):
        assert orjson.loads(after) == orjson.loads(
            scrub_event_json(before, client_ip="203.0.113.7"))
        for secret in ("hunter2", "xyz789", "k3y", "s3cret"):
            assert secret not in after
        assert MARKER in after


@pytest.mark.parametrize("event", [
    {"pa\u017fsword": "hunter2", "message": "ok"},
    {"request": {"headers": {"X-Api-\u017fecret": "hunter2"}}},
    {"extra": {"\u017fession": "hunter2"}, "user": {"id": "7"}},
])
def test_a_key_spelled_with_the_long_s_is_filtered(event: dict) -> None:
    # Lowering leaves the long s as it is, so the stem test over the lowered text cannot
    # see such a key; the (?i) rules and the walk read it as an `s`.
    payload = orjson.dumps(event).decode()
    out = scrub_payloads(raw_events([payload]), {1: ScrubConfig()})["payload"][0]
    assert "hunter2" not in out
    assert orjson.loads(out) == orjson.loads(scrub_event_json(payload, client_ip="203.0.113.7"))
