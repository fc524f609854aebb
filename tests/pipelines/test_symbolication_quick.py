"""Symbolication's quick path for common frames gives what its general path gives.

Most frames are plain: an int line and column, a string URL, no `data` or `platform` of their
own; symbolication decides them by their bundle's verdict alone (`_Symbolicator.quick`).
Everything else goes the general way. Here events of every odd shape (frames that are no
dicts, numbers where strings belong, bools for lines, `data` that is a string or already
symbolicated, maps found, missing and corrupt) run through both, and must come out the same
text, in batches that mix them as real batches do.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

import orjson
import pytest

from pipelines.symbolication import SourceMapCache, _Symbolicator, symbolicate_payloads
from tests.pipelines.test_symbolication import (
    BUNDLE_URL,
    ORG,
    RELEASE,
    Bundle,
    DictSourceMaps,
    raw_frame,
)
from tests.pipelines.test_symbolication import bundle as bundle  # noqa: F401 (fixture)

_ABSENT = "absent"  # a key the frame or event does not have
URLS: list[Any] = [
    BUNDLE_URL,
    "https://shop.example.com/static/js/app.min.js",
    "https://shop.example.com/static/js/corrupt.min.js",
    "https://shop.example.com/static/js/vendor.js",
    "node:internal/modules/cjs/loader",
    "<anonymous>",
    "[native code]",
    "native",
    "/srv/app/server.js",
    "app:///main.jsbundle",
    "https://shop.example.com/static/js/app.bundle#top",
    "static/js/ünïcode.js",
    "",
    None,
    5,
    ["x"],
    {"a": 1},
    "views.py",
]
POSITIONS: list[Any] = [1, 2, 3, 276, 385, 480, 0, -1, True, False, 1.5, "3", None, 2**64 - 1]
DATA: list[Any] = [_ABSENT] * 5 + [
    None,
    {},
    "text",
    [],
    {"symbolicated": True},
    {"symbolicated": "true"},
    {"symbolicated": False, "symbolication_error": "missing_sourcemap"},
    {"symbolication_error": "older", "sdk": [1]},
]
PLATFORMS: list[Any] = [_ABSENT] * 5 + [None, "javascript", "node", "python", ["x"], {}, 3]


def odd_frame(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice([None, "frame", [1], 3, {}])
    frame: dict[str, Any] = {}
    for key, values in (
        ("filename", URLS),
        ("abs_path", URLS),
        ("lineno", POSITIONS),
        ("colno", POSITIONS),
        ("function", ["a", None, 3, "?"]),
        ("in_app", [True, False, None]),
        ("module", ["app.min", None]),
        ("context_line", ["var a=1", None]),
        ("platform", PLATFORMS),
        ("data", DATA),
    ):
        value = rng.choice(values)
        if rng.random() < 0.75 and value != _ABSENT:
            frame[key] = copy.deepcopy(value)
    if rng.random() < 0.3:  # keys in another order
        frame = dict(rng.sample(list(frame.items()), len(frame)))
    return frame


def odd_event(rng: random.Random, bundle: Bundle) -> dict[str, Any]:
    frames = [odd_frame(rng) for _ in range(rng.randrange(7))]
    if rng.random() < 0.4:  # frames the bundle's map resolves, beside odd ones
        for position in (480, 385, 276)[: rng.randrange(1, 4)]:
            # Mostly the map's bundle; else a corrupt map, a missing one, Node's own code.
            url = rng.choice([BUNDLE_URL] * 4 + URLS[2:5])
            frames.insert(rng.randrange(len(frames) + 1), {
                "filename": url, "abs_path": url, "function": "c",
                "lineno": 1, "colno": position, "in_app": True,
            })  # fmt: skip
    stacktrace = rng.choice([{"frames": frames}, {"frames": frames, "registers": {}},
                             {"frames": "frames"}, frames, None])  # fmt: skip
    holder: dict[str, Any] = {"type": "Error", "value": "v", "stacktrace": stacktrace}
    if rng.random() < 0.1:
        holder["raw_stacktrace"] = {"frames": []}
    event: dict[str, Any] = {"event_id": uuid.UUID(int=rng.getrandbits(128)).hex}
    for key, values in (
        ("platform", ["javascript", "javascript", "node", "python", None, ["x"], _ABSENT]),
        ("release", [RELEASE, RELEASE, "", None, 5, "shop@0.1", _ABSENT]),
        ("dist", [None, "web", "", _ABSENT, _ABSENT]),
    ):
        value = rng.choice(values)
        if value != _ABSENT:
            event[key] = value
    if rng.random() < 0.3:
        image = {"type": "sourcemap", "code_file": BUNDLE_URL, "debug_id": bundle.debug_id}
        other = {"type": "sourcemap", "code_file": "https://shop.example.com/static/js/vendor.js",
                 "debug_id": str(uuid.UUID(int=rng.randrange(3)))}  # fmt: skip
        event["debug_meta"] = rng.choice([
            {"images": [image]}, {"images": [image | {"debug_id": "not-a-uuid"}]},
            {"images": [other, image]}, {"images": "images"}, None, [],
        ])  # fmt: skip
    shape = rng.random()
    if shape < 0.6:
        twice = rng.random() < 0.2
        event["exception"] = {"values": [holder] + ([copy.deepcopy(holder)] if twice else [])}
    elif shape < 0.75:
        event["exception"] = [holder]
    elif shape < 0.85:
        event["threads"] = {"values": [holder, 3]}
    else:
        event["exception"] = {"values": [holder]}
        event["threads"] = [copy.deepcopy(holder)]
    return event


def symbolicated(payloads: list[str], bundle: Bundle) -> list[str]:
    provider = DictSourceMaps(
        by_id={(ORG, bundle.debug_id): bundle.sourcemap},
        release_files={
            (ORG, RELEASE, None, "~/static/js/app.min.js"): bundle.sourcemap,
            (ORG, RELEASE, None, "~/static/js/corrupt.min.js"): b"{not a map",
        },
    )
    out = symbolicate_payloads(raw_frame(payloads), provider, SourceMapCache())
    return out.get_column("payload").to_list()


@pytest.mark.parametrize("seed", range(8))
def test_quick_path_gives_what_the_general_path_gives(
    bundle: Bundle, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    payloads = [orjson.dumps(odd_event(rng, bundle)).decode() for _ in range(300)]
    quick = symbolicated(payloads, bundle)
    monkeypatch.setattr(_Symbolicator, "quick", False)
    general = symbolicated(payloads, bundle)
    for payload, by_quick, by_general in zip(payloads, quick, general, strict=True):
        assert by_quick == by_general, payload
    # The batches did exercise both outcomes.
    assert any('"symbolicated":true' in text for text in quick)
    assert any('"symbolication_error":"missing_sourcemap"' in text for text in quick)
    assert any('"symbolication_error":"invalid_sourcemap"' in text for text in quick)


def test_frames_of_one_bundle_share_no_state_across_events(bundle: Bundle) -> None:
    """Frames of a bundle without a map get the same `data` in every event; one event's
    frames (a second pass over its output included) never change another's."""
    url = "https://shop.example.com/static/js/vendor.js"
    event = {"platform": "javascript", "release": RELEASE, "exception": {"values": [
        {"type": "Error", "stacktrace": {"frames": [
            {"abs_path": url, "lineno": 1, "colno": 5}, {"filename": url, "lineno": 1, "colno": 9},
        ]}},
    ]}}  # fmt: skip
    first, second = symbolicated([orjson.dumps(event).decode()] * 2, bundle)
    assert first == second
    frames = orjson.loads(first)["exception"]["values"][0]["stacktrace"]["frames"]
    assert [frame["data"] for frame in frames] == [
        {"symbolicated": False, "symbolication_error": "missing_sourcemap"}
    ] * 2
    again = symbolicated([first], bundle)
    assert again == [first]
