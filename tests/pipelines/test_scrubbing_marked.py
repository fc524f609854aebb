"""The two-pass replacements of scrub_payloads (`_replace_marked`): finding the matches with
the regex made group-free, wrapping them in sentinels and reading their groups with a small
regex must give what the one-pass `replace_all` with groups gives, whatever the text. And
the number candidates left unchecked (decimal fractions) hide no number the walk filters."""

from __future__ import annotations

import random

import orjson
import polars as pl
import pytest

from pipelines.scrubbing import (
    _JSON_KEY_VALUE,
    _JSON_SENSITIVE_VALUE,
    _MARKED_KEY_VALUE,
    _MARKED_SENSITIVE_VALUE,
    _SENTINELS,
    MARKER,
    _replace,
    _replace_marked,
    _two_passes,
    _ungrouped,
    scrub_event_json,
    scrub_payloads,
)
from tests.pipelines.test_scrubbing import raw_events

_SENSITIVE = (_JSON_SENSITIVE_VALUE, _MARKED_SENSITIVE_VALUE, f'${{1}}${{2}}"{MARKER}"${{3}}')
_KEY_VALUE = (_JSON_KEY_VALUE, _MARKED_KEY_VALUE, f"${{1}}${{2}}${{3}}{MARKER}")

# Pieces of JSON text and of text in it: sensitive and ordinary names (the long s and the
# Kelvin sign, which (?i) reads as `s` and `k`), quotes and escapes, Unicode whitespace,
# numbers, separators, and the sentinels themselves.
_PIECES = (
    '"', '"', '"', '"', "password", "pa\u017fsword", "api\u212aey", "Token", "auth", "x",
    "id", "pass", "my_", "-", ".", "_", " ", " ", "\u00a0", "\u3000", "\n", "\t", ":", ":",
    ",", ",", "[", "[", "]", "]", "{", "}", "\\", '\\"', "\\\\", "\\n", "\\u0041", "\\u00e9",
    "12", "-3", "1.5e+3", "e", "=", "=", "=>", ">", "&", "é", "Bearer", "\x00", "\x01", "ok",
)


_NAMES = ("password", "Pa\u017f\u017f", "api_\u212aey", "x-auth", "pwd", '1\\"token', "tokens")
_SPACES = ("", "", " ", "\u00a0", "\n", "\t ", "\u3000")
_SCALARS = ('"x"', '""', '"a\\"b"', '"\\\\"', '"\\\\\\""', "-12.5e+3", "12-", "7", "-",
            '"]"', '"é\\u00e9"', "[1]", "{}", "true")


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)

    def piece() -> str:
        return rng.choice(_PIECES)

    def space() -> str:
        return rng.choice(_SPACES)

    def scalar() -> str:
        return rng.choice(_SCALARS) if rng.random() < 0.7 else f'"{piece()}{piece()}"'

    shapes = (
        lambda: f'{piece()}"{rng.choice(_NAMES)}{piece()}"{space()}:{space()}{scalar()}{piece()}',
        lambda: f'{piece()}"{rng.choice(_NAMES)}"{space()}:{space()}{scalar()}{piece()}',
        lambda: f'[{space()}"{rng.choice(_NAMES)}"{space()},{space()}{scalar()}{space()}]'
                f'{piece()}',
        lambda: "".join(piece() for _ in range(rng.randint(1, 14))),
        lambda: f"{piece()}{rng.choice(['token', 'password', 'x_pwd'])}{piece()}{piece()}"
                f"{piece()}{piece()}",
    )
    return ["".join(rng.choice(shapes)() for _ in range(rng.randint(1, 4)))
            for _ in range(count)]


@pytest.mark.parametrize("rule", [_SENSITIVE, _KEY_VALUE], ids=["sensitive", "key_value"])
@pytest.mark.parametrize("seed", range(4))
def test_two_passes_replace_as_one(rule: tuple[str, str, str], seed: int) -> None:
    pattern, marked, replacement = rule
    texts = pl.Series(_texts(seed, 3000), dtype=pl.String)
    matched = texts.str.contains(pattern)
    assert matched.sum() > 200  # the pieces make matches, many of them odd
    every = pl.Series([True] * texts.len())
    one_pass = _replace(texts, every, pattern, replacement)
    sentinels = texts.str.contains(_SENTINELS)
    # The second pass alone reads every marked match (the one-pass fallback of
    # _replace_marked for an unread one does not hide a wrong `marked` here).
    clean = ~sentinels
    two_passes = _two_passes(texts.filter(clean), pattern, marked, replacement)
    assert two_passes.to_list() == one_pass.filter(clean).to_list()
    assert _replace_marked(texts, every, sentinels, pattern, marked,
                           replacement).to_list() == one_pass.to_list()
    # And on some rows only, some of them holding a sentinel as it is.
    some = pl.Series([index % 3 == 0 for index in range(texts.len())])
    partial = _replace_marked(texts, some, sentinels, pattern, marked, replacement)
    assert partial.to_list() == [
        after if chosen else before
        for before, after, chosen in zip(texts, one_pass, some, strict=True)
    ]


def test_sentinels_never_left() -> None:
    texts = pl.Series(_texts(9, 3000), dtype=pl.String)
    clean = pl.Series([text for text in texts if "\x00" not in text and "\x01" not in text])
    for pattern, marked, replacement in (_SENSITIVE, _KEY_VALUE):
        result = _two_passes(clean, pattern, marked, replacement)
        assert not result.str.contains(_SENTINELS).any()


def test_a_match_the_second_pass_cannot_read_takes_one_pass() -> None:
    # Should a marked match ever escape the second pass, its row is replaced in one pass:
    # the value is filtered all the same, and no sentinel is left in the event.
    texts = pl.Series(['{"password": "hunter2", "n": 1}', '{"a": "b"}',
                       '{"user": {"token": "t0k3n"}}'])
    every = pl.Series([True, True, True])
    pattern, _, replacement = _SENSITIVE
    result = _replace_marked(texts, every, None, pattern, r"\x00never\x01", replacement)
    assert result.to_list() == _replace(texts, every, pattern, replacement).to_list()
    assert "hunter2" not in result[0] and "t0k3n" not in result[2]
    assert not result.str.contains(_SENTINELS).any()


@pytest.mark.parametrize("pattern", [_JSON_SENSITIVE_VALUE, _JSON_KEY_VALUE])
def test_ungrouped_has_no_groups(pattern: str) -> None:
    # As Polars' regex reads them: the first pass must not run a capture engine.
    probe = pl.Series(["x"])
    assert probe.str.extract_groups(pattern).struct.fields == ["1", "2", "3"]
    assert probe.str.extract_groups(_ungrouped(pattern)).struct.fields == []


# Card numbers, SSNs and IBANs next to decimal fractions, which _number_bits does not check
# in Python: the fast path must still filter what the reference path filters.
_NUMBER_TEXTS = (
    "t=1795788205.0955050338666239", ".4111111111111111", "x.4111111111111111",
    "0.4111111111111111 4111 1111 1111 1111", "4111111111111111.0955050338666239",
    "id .4111111111111111 and 4111-1111-1111-1111", "DE89370400440532013000.0955050338666239",
    ".123-45-6789", "v 078-05-1120.5", "\\n.4111111111111111", ".4111111111111111\\n",
)


@pytest.mark.parametrize("text", _NUMBER_TEXTS)
def test_decimal_fractions_beside_numbers(text: str) -> None:
    event = {"extra": {"a": text, "b": 1795788205.0955050338666239,
                       "c": [text, "plain"]}, "breadcrumbs": [{"timestamp": 1.0955050338666}]}
    payload = orjson.dumps(event).decode()
    fast = scrub_payloads(raw_events([payload]), {})["payload"].to_list()[0]
    reference = scrub_event_json(payload, client_ip="203.0.113.7")
    assert orjson.loads(fast) == orjson.loads(reference)
