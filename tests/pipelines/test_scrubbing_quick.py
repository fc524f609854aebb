"""The quick `key=value` path of scrub_payloads (`_quick_key_values`): events whose only rule
left is `key=value` in plain strings get that rule as a regex over the JSON text instead of
the walk. Parsed, they must come out as the walk makes them, including where the walk's
reading of pairs is surprising; their text keeps the SDK's layout."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines import scrubbing
from pipelines.scrubbing import MARKER, scrub_payloads

# Pieces that make strings where the two readings of pairs could part: separators with and
# without spaces, sensitive and ordinary key names (whole and inside words), auth schemes,
# values that hold pairs, the marker, and characters that send an event to the walk.
PIECES = (
    "token", "password", "pass", "Bearer", "bearer", "Basic", "TOKEN", "Token", "id", "x",
    "a.b", "=", "=", ":", ":", " ", " ", "&", "?", "/", "https", "secret", "api_key", "apiKey",
    "1", MARKER, "-", "_", ".", "sessions", "bypass", "auth", "xtoken", "sk_123", "session_id",
    "pwd", "cvv", "jwt", "my.token", "token_x", "PASSWORD", "Authorization", "author", "abc",
    "hunter2", "Max_Tokens", "csrf", "ssn", "pass1", "1pass", "@", "#", "//", "==", "::",
    "=>", ">", "Cookie", "b", "expired", "null", "Too",
)
NOT_PLAIN = ("%s", "{", "'", ",", ";", "é")


def random_text(rng: random.Random, pieces: tuple[str, ...]) -> str:
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 9)))


def random_event(rng: random.Random, pieces: tuple[str, ...]) -> dict[str, Any]:
    def text() -> str:
        return random_text(rng, pieces)

    places = {
        "request": lambda: {"url": text(), "data": text(), "headers": {"X-A": text()}},
        "extra": lambda: {rng.choice(["k", "note", "id", "token=x", "my key"]): text()},
        "exception": lambda: {"values": [{"type": "E", "value": text()}]},
        "tags": lambda: [[text(), text()], ["a", "b"]],
        "breadcrumbs": lambda: [{"message": text()}],
        "user": lambda: {"id": text(), "username": text(),
                         "email": rng.choice([MARKER, "[abcdefgh]", ""])},
        "message": text,
        "logentry": lambda: {"message": text(), "params": ["p"]},
        "contexts": lambda: {"app": {"name": text(), "n": 1.5e20, "v": [1, {"q": text()}]}},
    }
    return {name: places[name]() for name in rng.sample(sorted(places), rng.randint(1, 5))}


def raw_events(payloads: list[str]) -> pl.DataFrame:
    count = len(payloads)
    return pl.DataFrame({
        "organization_id": [1] * count, "project_id": [1] * count,
        "event_id": [f"{i:032x}" for i in range(count)], "item_type": ["event"] * count,
        "received_at": [datetime(2026, 11, 1, tzinfo=UTC)] * count,
        "client_ip": ["203.0.113.7"] * count, "payload": payloads,
    })


def scrubbed_both_ways(payloads: list[str],
                       monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str], int]:
    """(with the quick path, with the walk only, how many events took the quick path)."""
    quick = scrubbing._quick_key_values
    taken = 0

    def counting(payload: pl.Series, masks: pl.Series) -> tuple[pl.Series, pl.Series]:
        nonlocal taken
        new_payload, new_masks = quick(payload, masks)
        taken = int(((masks > 0) & (new_masks == 0)).sum())
        return new_payload, new_masks

    frame = raw_events(payloads)
    with monkeypatch.context() as patch:
        patch.setattr(scrubbing, "_quick_key_values", counting)
        fast = scrub_payloads(frame, {})["payload"].to_list()
    with monkeypatch.context() as patch:
        patch.setattr(scrubbing, "_quick_key_values", lambda payload, masks: (payload, masks))
        walked = scrub_payloads(frame, {})["payload"].to_list()
    return fast, walked, taken


@pytest.mark.parametrize("pieces", [PIECES, PIECES + NOT_PLAIN], ids=["plain", "mixed"])
def test_quick_path_gives_what_the_walk_gives(pieces: tuple[str, ...],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261127)
    payloads = []
    for _ in range(6000):
        event = random_event(rng, pieces)
        # Compact as orjson writes it, and spaced and ASCII-escaped as Python's json does.
        payloads.append(orjson.dumps(event).decode() if rng.random() < 0.8 else
                        json.dumps(event))
    fast, walked, taken = scrubbed_both_ways(payloads, monkeypatch)
    assert taken > 300  # the quick path was tried on many events
    assert [(p, f) for p, f, w in zip(payloads, fast, walked, strict=True)
            if orjson.loads(f) != orjson.loads(w)] == []


@pytest.mark.parametrize(("text", "expected"), [
    ("https://shop.example.com/cart?id=5&token=sk_1",
     f"https://shop.example.com/cart?id=5&token={MARKER}"),
    ("bug 42: id 9 password = hunter2 x", f"bug 42: id 9 password = {MARKER} x"),
    ("a=b&api_key=abc&c=d", f"a=b&api_key={MARKER}&c=d"),
    # What follows the separator of an ordinary key can start a pair itself.
    ("k: password = hunter2", f"k: password = {MARKER}"),
    ("a=token: secret", f"a=token: {MARKER}"),
    ("x: Bearer token : secret", f"x: Bearer token : {MARKER}"),
    ("max_tokens=5 bypass=1", "max_tokens=5 bypass=1"),
    # A word for the credential's state is no credential: the message keeps its meaning.
    ("AuthError: Token: expired", "AuthError: Token: expired"),
    ("token=null&password=hunter2", f"token=null&password={MARKER}"),
])
def test_quick_path_cases(text: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = orjson.dumps({"extra": {"note": text}}).decode()
    fast, walked, _ = scrubbed_both_ways([payload], monkeypatch)
    assert orjson.loads(fast[0])["extra"]["note"] == expected
    assert orjson.loads(fast[0]) == orjson.loads(walked[0])


@pytest.mark.parametrize("payload", [
    '{"extra":{"k":"token=abc","k":"plain"}}',
    '{"extra":{"k":"token=abc","k":"token=[Filtered]"}}',
    '{"extra":{"k":"plain","k":"token=abc"}}',
    '{"extra":{"k":"token=abc"},"extra":{"k":"q"}}',
])
def test_repeated_keys_are_filtered_in_every_copy(
        payload: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing keeps a repeated key's last value, as the walk does; the text, which keeps
    # every copy, has none left unfiltered.
    fast, walked, _ = scrubbed_both_ways([payload], monkeypatch)
    assert orjson.loads(fast[0]) == orjson.loads(walked[0])
    assert "token=abc" not in fast[0]
