"""Symbolication of JavaScript frames (pipelines.symbolication).

The main fixture builds a real minified bundle with esbuild from the small app in
`tests/pipelines/js/src`, runs it with node to get a real stack trace, and shapes the error
into a Sentry event as @sentry/browser would send it. Source maps are served by a small
in-memory provider: it stands in for the blob store, and symbolic parses every map for real.

Debug ids: esbuild does not write them, so the fixture adds one the way Sentry's tooling
(`sentry-cli sourcemaps inject`) does: `debugId`/`debug_id` fields in the map and a
`//# debugId=<id>` comment at the end of the bundle. (The tool also prepends a snippet that
registers the id at run time and shifts the map to match; the fixture leaves the code as it
is and the event builder reads the comment instead, as the SDK would read that registry.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.batch import process_raw_events
from pipelines.symbolication import (
    CacheStats,
    SourceMapCache,
    artifact_names_for_url,
    debug_id_of_sourcemap,
    source_mapping_url,
    symbolicate_payloads,
)

JS_PROJECT = Path(__file__).parent / "js"
ESBUILD = JS_PROJECT / "node_modules" / ".bin" / "esbuild"
BUNDLE_URL = "https://shop.example.com/static/js/app.min.js?v=3"
RELEASE = "shop@1.0.4"
ORG = 7


# --- the real bundle ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    code: bytes  # the minified file, with the debug id comment
    sourcemap: bytes  # its map, with the debug id
    debug_id: str
    error: dict[str, Any]  # what node threw: type, value, frames (innermost first)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_bundle(tmp_path_factory.mktemp("shop"))


def build_bundle(root: Path) -> Bundle:
    """Minify the fixture app with esbuild (map + debug id) and run it with node."""
    if not ESBUILD.exists():
        pytest.fail(f"{ESBUILD} is missing: run scripts/setup-test-deps (npm ci)")
    # Build in a copy laid out like a web project, so the map's sources read `../../src/…`.
    shutil.copytree(JS_PROJECT / "src", root / "src")
    subprocess.run(
        [ESBUILD, "src/app.js", "--bundle", "--minify", "--sourcemap", "--format=iife",
         "--outfile=static/js/app.min.js", "--log-level=warning"],
        cwd=root, check=True, timeout=60,
    )  # fmt: skip
    bundle_path = root / "static" / "js" / "app.min.js"
    map_path = bundle_path.with_name("app.min.js.map")

    # Like sentry-cli, derive the id from the content, so a rebuild of the same code keeps it.
    debug_id = str(uuid.UUID(bytes=hashlib.sha256(bundle_path.read_bytes()).digest()[:16]))
    sourcemap = json.loads(map_path.read_text())
    sourcemap["debugId"] = sourcemap["debug_id"] = debug_id
    map_path.write_text(json.dumps(sourcemap))
    # Appended after the last line of code, so no mapped position moves.
    with bundle_path.open("a") as file:
        file.write(f"//# debugId={debug_id}\n")

    # V8 reports BUNDLE_URL as the file name, as a browser reports a <script src>.
    result = subprocess.run(
        ["node", str(JS_PROJECT / "run-bundle.cjs"), str(bundle_path), BUNDLE_URL],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return Bundle(
        code=bundle_path.read_bytes(),
        sourcemap=map_path.read_bytes(),
        debug_id=debug_id,
        error=json.loads(result.stdout),
    )


def sentry_event(
    bundle: Bundle, release: str | None = RELEASE, dist: str | None = None, debug_ids: bool = True
) -> dict[str, Any]:
    """The error as @sentry/browser sends it: frames oldest first, debug ids per bundle."""
    frames = [
        {
            "filename": frame["abs_path"],
            "abs_path": frame["abs_path"],
            "function": frame["function"] or "?",
            "lineno": frame["lineno"],
            "colno": frame["colno"],
            "in_app": True,
        }
        for frame in reversed(bundle.error["frames"])
    ]
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "platform": "javascript",
        "level": "error",
        "exception": {
            "values": [
                {
                    "type": bundle.error["type"],
                    "value": bundle.error["value"],
                    "stacktrace": {"frames": frames},
                    "mechanism": {"type": "onerror", "handled": False},
                }
            ]
        },
    }
    if release is not None:
        event["release"] = release
    if dist is not None:
        event["dist"] = dist
    if debug_ids:
        match = re.search(rb"//# debugId=([0-9a-f-]+)", bundle.code)
        assert match is not None
        event["debug_meta"] = {
            "images": [
                {"type": "sourcemap", "code_file": BUNDLE_URL, "debug_id": match[1].decode()}
            ]
        }
    return event


def raw_frame(payloads: list[str], organization_id: int = ORG) -> pl.DataFrame:
    """A frame shaped like ClickHouse raw_events (pipelines/README.md)."""
    count = len(payloads)
    text = ["x"] * count
    return pl.DataFrame(
        {
            "organization_id": [organization_id] * count,
            "project_id": [3] * count,
            "event_id": [uuid.uuid4().hex for _ in payloads],
            "item_type": ["event"] * count,
            "received_at": [dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)] * count,
            "client_ip": ["203.0.113.9"] * count,
            **{
                name: text
                for name in (
                    "user_agent",
                    "ua_browser",
                    "ua_browser_version",
                    "ua_os",
                    "ua_os_version",
                    "ua_device",
                    "sdk_name",
                    "sdk_version",
                )
            },  # fmt: skip
            "payload": payloads,
        },
        schema_overrides={
            "organization_id": pl.UInt64,
            "project_id": pl.UInt64,
            "received_at": pl.Datetime("ms", "UTC"),
        },
    )


class DictSourceMaps:
    """The injected storage: maps by (org, debug id), release files by artifact name."""

    def __init__(
        self,
        by_id: dict[tuple[int, str], bytes] | None = None,
        release_files: dict[tuple[int, str, str | None, str], bytes] | None = None,
    ) -> None:
        self.by_id = by_id or {}
        self.release_files = release_files or {}
        self.calls: list[tuple[Any, ...]] = []

    def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
        self.calls.append(("debug_id", organization_id, debug_id))
        return self.by_id.get((organization_id, debug_id))

    def by_release(
        self, organization_id: int, release: str, dist: str | None, url: str
    ) -> bytes | None:
        self.calls.append(("release", organization_id, release, dist, url))
        for name in artifact_names_for_url(url):
            data = self.release_files.get((organization_id, release, dist, name))
            if data is not None:
                return data
        return None


def run(events: list[dict[str, Any]], provider: DictSourceMaps, **kwargs: Any) -> list[Any]:
    out = symbolicate_payloads(raw_frame([orjson.dumps(e).decode() for e in events]), provider,
                               **kwargs)  # fmt: skip
    return [orjson.loads(p) for p in out["payload"]]


def frames_of(event: dict[str, Any], key: str = "stacktrace") -> list[dict[str, Any]]:
    return event["exception"]["values"][0][key]["frames"]


def source_line(path: str, needle: str) -> tuple[int, int, list[str]]:
    """(1-based line, 1-based column) of `needle` in an original file, and the file's lines."""
    lines = (JS_PROJECT / path).read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if needle in line:
            return number, line.index(needle) + 1, lines
    raise AssertionError(f"{needle!r} not in {path}")


def assert_original_frames(frames: list[dict[str, Any]], resolved_with: str) -> None:
    """The three app frames name the original files, lines, functions and context."""
    checkout, place_order, main = frames[-1], frames[-2], frames[-3]

    # V8 places a `throw new X()` at the `new`.
    line, column, lines = source_line("src/cart.js", "new CartError(")
    assert checkout["filename"] == "src/cart.js"
    assert checkout["abs_path"] == "https://shop.example.com/src/cart.js"
    assert (checkout["lineno"], checkout["colno"]) == (line, column)
    assert checkout["function"] == "checkout"
    assert checkout["context_line"] == lines[line - 1]
    assert checkout["pre_context"] == lines[line - 6 : line - 1]
    assert checkout["post_context"] == lines[line : line + 5]
    assert checkout["data"]["symbolicated"] is True
    assert checkout["data"]["resolved_with"] == resolved_with

    line, column, lines = source_line("src/app.js", "checkout(cart)")
    assert (place_order["filename"], place_order["lineno"]) == ("src/app.js", line)
    assert place_order["colno"] == column
    assert place_order["function"] == "placeOrder"

    # Its caller is the test runner, which no map covers: the name V8 inferred stays.
    line, _, _ = source_line("src/app.js", 'placeOrder("ada")')
    assert (main["filename"], main["lineno"]) == ("src/app.js", line)
    assert main["function"] == "globalThis.pulsetraceFixtureMain"
    assert main["data"]["symbolicated"] is True

    for frame in frames[:-3]:  # the runner and node's own modules
        assert frame["data"]["symbolicated"] is False


# --- resolving the real bundle --------------------------------------------------------------


def test_resolves_real_bundle_by_debug_id(bundle: Bundle) -> None:
    provider = DictSourceMaps(by_id={(ORG, bundle.debug_id): bundle.sourcemap})
    original = sentry_event(bundle, release=None)
    [event] = run([original], provider)

    assert_original_frames(frames_of(event), "debug_id")
    assert frames_of(event)[-1]["data"]["debug_id"] == bundle.debug_id
    # The minified trace is kept as it came, beside the new one.
    assert frames_of(event, "raw_stacktrace") == frames_of(original)
    assert frames_of(original)[-1]["filename"] == BUNDLE_URL
    # Everything else in the event is untouched.
    assert {k: v for k, v in event.items() if k != "exception"} == {
        k: v for k, v in original.items() if k != "exception"
    }
    # Running the stage again on its own output changes nothing.
    assert run([event], provider) == [event]


def test_resolves_by_release_and_tilde_path(bundle: Bundle) -> None:
    provider = DictSourceMaps(
        release_files={(ORG, RELEASE, None, "~/static/js/app.min.js"): bundle.sourcemap}
    )
    [event] = run([sentry_event(bundle, debug_ids=False)], provider)
    assert_original_frames(frames_of(event), "release")


def test_resolves_by_release_and_full_url_with_query(bundle: Bundle) -> None:
    provider = DictSourceMaps(release_files={(ORG, RELEASE, "web", BUNDLE_URL): bundle.sourcemap})
    [event] = run([sentry_event(bundle, dist="web", debug_ids=False)], provider)
    assert_original_frames(frames_of(event), "release")


def test_debug_id_not_uploaded_falls_back_to_release(bundle: Bundle) -> None:
    provider = DictSourceMaps(
        release_files={(ORG, RELEASE, None, "~/static/js/app.min.js"): bundle.sourcemap}
    )
    [event] = run([sentry_event(bundle)], provider)
    assert_original_frames(frames_of(event), "release")


def test_chained_exceptions_and_threads(bundle: Bundle) -> None:
    """Every exception of a chain, and thread stack traces, are symbolicated."""
    original = sentry_event(bundle)
    values = original["exception"]["values"]
    values.insert(0, {**values[0], "type": "TypeError", "value": "the cause"})
    original["threads"] = {"values": [{"id": 1, "stacktrace": values[1]["stacktrace"]}]}
    provider = DictSourceMaps(by_id={(ORG, bundle.debug_id): bundle.sourcemap})
    [event] = run([original], provider)
    for holder in [*event["exception"]["values"], *event["threads"]["values"]]:
        assert_original_frames(holder["stacktrace"]["frames"], "debug_id")
        assert holder["raw_stacktrace"] == values[1]["stacktrace"]
    assert len(provider.calls) == 2  # the map, and the runner's file (no map for it)


# --- frames that stay minified --------------------------------------------------------------


def assert_unsymbolicated(original: dict[str, Any], event: dict[str, Any], error: str) -> None:
    frames = frames_of(event)
    assert "raw_stacktrace" not in event["exception"]["values"][0]
    for before, after in zip(frames_of(original), frames, strict=True):
        assert {k: v for k, v in after.items() if k != "data"} == before
        assert after["data"]["symbolicated"] is False
    assert frames[-1]["data"]["symbolication_error"] == error


def test_wrong_release_or_dist_leaves_frames_marked(bundle: Bundle) -> None:
    provider = DictSourceMaps(
        release_files={(ORG, RELEASE, None, "~/static/js/app.min.js"): bundle.sourcemap}
    )
    wrong_release = sentry_event(bundle, release="shop@9.9.9", debug_ids=False)
    wrong_dist = sentry_event(bundle, dist="android", debug_ids=False)
    other_org = sentry_event(bundle, debug_ids=False)
    events = run([wrong_release, wrong_dist], provider)
    [other] = [
        orjson.loads(p)
        for p in symbolicate_payloads(
            raw_frame([orjson.dumps(other_org).decode()], organization_id=8), provider
        )["payload"]
    ]
    assert_unsymbolicated(wrong_release, events[0], "missing_sourcemap")
    assert_unsymbolicated(wrong_dist, events[1], "missing_sourcemap")
    assert_unsymbolicated(other_org, other, "missing_sourcemap")


def test_no_map_at_all_marks_frames(bundle: Bundle) -> None:
    original = sentry_event(bundle, release=None, debug_ids=False)
    [event] = run([original], DictSourceMaps())
    assert_unsymbolicated(original, event, "missing_sourcemap")


def test_corrupt_map_never_fails_the_batch(bundle: Bundle) -> None:
    corrupt = bundle.sourcemap[: len(bundle.sourcemap) // 2]
    provider = DictSourceMaps(
        by_id={(ORG, bundle.debug_id): corrupt},
        release_files={(ORG, "shop@1.0.5", None, BUNDLE_URL): b'{"version":3,"mappings":"!!"}'},
    )
    broken = sentry_event(bundle)
    bad_mappings = sentry_event(bundle, release="shop@1.0.5", debug_ids=False)
    good = sentry_event(bundle, release=None, debug_ids=False)
    provider.by_id[(ORG, "00000000-0000-4000-8000-000000000001")] = bundle.sourcemap
    good["debug_meta"] = {
        "images": [
            {
                "type": "sourcemap",
                "code_file": BUNDLE_URL,
                "debug_id": "00000000-0000-4000-8000-000000000001",
            }
        ]
    }
    events = run([broken, bad_mappings, good], provider)
    assert_unsymbolicated(broken, events[0], "invalid_sourcemap")
    assert_unsymbolicated(bad_mappings, events[1], "invalid_sourcemap")
    assert_original_frames(frames_of(events[2]), "debug_id")


def test_position_outside_the_map(bundle: Bundle) -> None:
    original = sentry_event(bundle, release=None)
    # The bundle is one line of code; line 40 is past its end, where symbolic would answer
    # with the last token of an earlier line.
    frames_of(original)[-1]["lineno"] = 40
    del frames_of(original)[-1]["colno"]  # and a frame without a column cannot be placed
    frames_of(original)[-2]["lineno"] = 40
    provider = DictSourceMaps(by_id={(ORG, bundle.debug_id): bundle.sourcemap})
    [event] = run([original], provider)
    frames = frames_of(event)
    assert frames[-1]["data"] == {"symbolicated": False}
    assert frames[-2]["data"] == {"symbolicated": False, "symbolication_error": "no_mapping"}
    assert frames[-2]["lineno"] == 40 and frames[-2]["abs_path"] == BUNDLE_URL
    assert frames[-3]["data"]["symbolicated"] is True  # the rest of the trace still resolves
    assert frames[-3]["filename"] == "src/app.js"


def test_other_events_pass_through_byte_identical(bundle: Bundle) -> None:
    python_error = (
        '{"platform": "python",  "exception": {"values": [{"type": "KeyError", "stacktrace": '
        '{"frames": [{"filename": "app/views.py", "lineno": 3, "function": "index"}]}}]},'
        ' "message": "see https://example.com/app.min.js?x"}'
    )
    js_message = '{"platform":"javascript","message":"no trace here","release":"shop@1.0.4"}'
    transaction = '{"type":"transaction","platform":"javascript","spans":[],"sdk":{"x":1}}'
    not_json = '{"platform":"javascript","stacktrace" oops'
    native_only = orjson.dumps(
        {
            "platform": "javascript",
            "release": RELEASE,
            "exception": {"values": [{"type": "Error", "stacktrace": {"frames": "weird"}}]},
        }
    ).decode()
    payloads = [python_error, js_message, transaction, not_json, native_only]
    frame = raw_frame(payloads)
    provider = DictSourceMaps(
        release_files={(ORG, RELEASE, None, "~/static/js/app.min.js"): bundle.sourcemap}
    )
    out = symbolicate_payloads(frame, provider)
    assert out.equals(frame)
    assert out["payload"].to_list() == payloads
    assert provider.calls == []


def test_mixed_batch_keeps_columns_and_row_order(bundle: Bundle) -> None:
    provider = DictSourceMaps(by_id={(ORG, bundle.debug_id): bundle.sourcemap})
    payloads = [
        '{"platform":"python","message":"hello"}',
        orjson.dumps(sentry_event(bundle)).decode(),
        '{"platform":"cocoa","message":"bye"}',
    ]
    frame = raw_frame(payloads)
    out = symbolicate_payloads(frame, provider)
    assert out.schema == frame.schema
    assert out.drop("payload").equals(frame.drop("payload"))
    assert out["payload"][0] == payloads[0] and out["payload"][2] == payloads[2]
    assert frames_of(orjson.loads(out["payload"][1]))[-1]["function"] == "checkout"
    assert symbolicate_payloads(frame.clear(), provider).equals(frame.clear())


def test_provider_failure_fails_the_batch(bundle: Bundle) -> None:
    """A storage outage must not turn into events stored unsymbolicated for good."""

    class Broken(DictSourceMaps):
        def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
            raise OSError("blob store unreachable")

    with pytest.raises(OSError, match="unreachable"):
        run([sentry_event(bundle)], Broken())


def test_sources_from_webpack_and_node_modules() -> None:
    """Source names are cleaned up, dependencies are not in-app, long lines are cut."""
    long_line = "const table = [" + ", ".join(str(n) for n in range(200)) + "];"
    sourcemap = {
        "version": 3,
        "sources": ["webpack://shop/./node_modules/left-pad/index.js", "webpack:///./src/ui.js"],
        "sourcesContent": [long_line + "\nmodule.exports = leftPad;\n", None],
        "names": ["leftPad"],
        # Line 1 col 1 → source 0 line 1 col 1; line 2 col 1 → source 1 line 3 col 5.
        "mappings": "AAAAA;ACEI",
    }
    event = {
        "platform": "node",
        "release": RELEASE,
        "exception": {
            "values": [
                {
                    "type": "Error",
                    "stacktrace": {
                        "frames": [
                            {
                                "abs_path": "app:///dist/main.js",
                                "module": "main",
                                "lineno": 1,
                                "colno": 1,
                                "function": "a",
                                "in_app": True,
                                "context_line": "minified!",
                            },
                            {
                                "abs_path": "app:///dist/main.js",
                                "lineno": 2,
                                "colno": 1,
                                "function": "b",
                            },
                        ]  # fmt: skip
                    },
                }
            ]
        },
    }
    provider = DictSourceMaps(
        release_files={(ORG, RELEASE, None, "~/dist/main.js"): json.dumps(sourcemap).encode()}
    )
    [out] = run([event], provider)
    vendor, ui = frames_of(out)
    assert vendor["filename"] == "node_modules/left-pad/index.js"
    assert vendor["abs_path"] == "webpack://shop/./node_modules/left-pad/index.js"
    assert vendor["module"] == "node_modules/left-pad/index"
    assert vendor["in_app"] is False
    assert vendor["context_line"].endswith(" {snip}") and len(vendor["context_line"]) < 160
    assert vendor["post_context"] == ["module.exports = leftPad;"]
    assert (ui["filename"], ui["lineno"], ui["colno"]) == ("src/ui.js", 3, 5)
    assert ui["function"] == "leftPad"  # named by its caller's token
    # No sourcesContent for it: context read from the minified file would mislead.
    assert "context_line" not in ui and "pre_context" not in ui


# --- the cache ------------------------------------------------------------------------------


def test_cache_parses_each_map_once_per_batch(bundle: Bundle) -> None:
    provider = DictSourceMaps(
        by_id={(ORG, bundle.debug_id): bundle.sourcemap},
        release_files={(ORG, RELEASE, None, "~/static/js/app.min.js"): bundle.sourcemap},
    )
    events = [sentry_event(bundle, release=None) for _ in range(150)]
    events += [sentry_event(bundle, debug_ids=False) for _ in range(150)]
    events += [sentry_event(bundle, release="unknown", debug_ids=False) for _ in range(150)]
    cache = SourceMapCache()
    out = run(events, provider, cache=cache)
    assert all(frames_of(e)[-1]["function"] == "checkout" for e in out[:300])
    assert all(frames_of(e)[-1]["data"]["symbolicated"] is False for e in out[300:])
    # Storage asked once per distinct (map key): debug id, release, unknown release; plus
    # the runner's file, which has a release but no map, once per release.
    assert sorted(provider.calls, key=str) == sorted(
        [
            ("debug_id", ORG, bundle.debug_id),
            ("release", ORG, RELEASE, None, BUNDLE_URL),
            ("release", ORG, "unknown", None, BUNDLE_URL),
            ("release", ORG, RELEASE, None, str(JS_PROJECT / "run-bundle.cjs")),
            ("release", ORG, "unknown", None, str(JS_PROJECT / "run-bundle.cjs")),
        ],
        key=str,
    )
    assert cache.stats.parses == 2 and cache.stats.misses == 5

    # A cache passed to the next batch answers without storage.
    run(events[:10], provider, cache=cache)
    assert len(provider.calls) == 5


def test_cache_bounds_and_expiry(bundle: Bundle) -> None:
    now = [0.0]
    cache = SourceMapCache(
        max_entries=3,
        max_bytes=2 * len(bundle.sourcemap),
        negative_ttl_seconds=60,
        release_ttl_seconds=600,
        clock=lambda: now[0],
    )
    fetches: list[str] = []

    def fetch(data: bytes | None, name: str) -> Callable[[], bytes | None]:
        def load() -> bytes | None:
            fetches.append(name)
            return data

        return load

    sm = bundle.sourcemap
    cache.get(("debug_id", ORG, "a"), fetch(sm, "a"))
    cache.get(("debug_id", ORG, "b"), fetch(sm, "b"))
    cache.get(("debug_id", ORG, "a"), fetch(sm, "a"))  # hit: "a" is now the most recent
    cache.get(("debug_id", ORG, "c"), fetch(sm, "c"))  # over the byte budget: "b" goes
    assert fetches == ["a", "b", "c"]
    assert len(cache) == 2 and cache.total_bytes == 2 * len(sm)
    cache.get(("debug_id", ORG, "a"), fetch(sm, "a"))
    cache.get(("debug_id", ORG, "b"), fetch(sm, "b"))
    assert fetches == ["a", "b", "c", "b"]

    # Negative entries count toward max_entries but not bytes, and expire.
    cache.get(("debug_id", ORG, "gone"), fetch(None, "gone"))
    cache.get(("debug_id", ORG, "gone"), fetch(None, "gone"))
    assert fetches.count("gone") == 1 and len(cache) == 3
    now[0] = 61.0
    cache.get(("debug_id", ORG, "gone"), fetch(None, "gone"))
    assert fetches.count("gone") == 2

    # Release files can be replaced, so they are re-read after their TTL; debug ids never.
    key = ("release", ORG, RELEASE, None, BUNDLE_URL)
    cache.get(key, fetch(sm, "release"))
    now[0] = 500.0
    cache.get(key, fetch(sm, "release"))
    assert fetches.count("release") == 1
    now[0] = 700.0
    cache.get(key, fetch(sm, "release"))
    assert fetches.count("release") == 2
    assert cache.stats == CacheStats(hits=4, misses=8, parses=6, invalid=0, evictions=3)


# --- helpers for the upload side ------------------------------------------------------------


def test_artifact_names_for_url() -> None:
    assert artifact_names_for_url("https://shop.example.com/static/js/app.min.js?v=3#x") == [
        "https://shop.example.com/static/js/app.min.js?v=3#x",
        "https://shop.example.com/static/js/app.min.js?v=3",
        "https://shop.example.com/static/js/app.min.js",
        "~/static/js/app.min.js?v=3",
        "~/static/js/app.min.js",
    ]
    assert artifact_names_for_url("https://shop.example.com/app.js") == [
        "https://shop.example.com/app.js",
        "~/app.js",
    ]
    assert artifact_names_for_url("app:///dist/main.js") == [
        "app:///dist/main.js",
        "~/dist/main.js",
    ]
    assert artifact_names_for_url("/srv/app/dist/index.js") == [
        "/srv/app/dist/index.js",
        "~/srv/app/dist/index.js",
    ]
    assert artifact_names_for_url("main.js") == ["main.js"]


def test_debug_id_and_source_mapping_url_of_uploads(bundle: Bundle) -> None:
    assert debug_id_of_sourcemap(bundle.sourcemap) == bundle.debug_id
    assert debug_id_of_sourcemap(b'{"debug_id": "0E2B4AC5-56C8-4F4B-9A8C-3D7C1D1C0E4B"}') == (
        "0e2b4ac5-56c8-4f4b-9a8c-3d7c1d1c0e4b"
    )
    assert debug_id_of_sourcemap(b'{"version": 3}') is None
    assert debug_id_of_sourcemap(b"not json") is None
    assert source_mapping_url(bundle.code) == "app.min.js.map"
    assert source_mapping_url(b"var a=1;") is None


# --- timing ---------------------------------------------------------------------------------


@pytest.mark.bench
def test_throughput(bundle: Bundle) -> None:
    """Events/s: JavaScript errors sharing one map, other events, and a 1:4 mix of both."""
    provider = DictSourceMaps(by_id={(ORG, bundle.debug_id): bundle.sourcemap})
    js = orjson.dumps(sentry_event(bundle, release=None)).decode()
    other = orjson.dumps(
        {
            "platform": "python",
            "message": "x" * 500,
            "exception": {"values": [{"type": "E", "stacktrace": {"frames": [{"lineno": 1}]}}]},
        }
    ).decode()
    batches = {
        "JavaScript only": raw_frame([js] * 20_000),
        "other platforms only": raw_frame([other] * 100_000),
        "1 JavaScript in 5": raw_frame([js if i % 5 == 0 else other for i in range(100_000)]),
    }
    for label, frame in batches.items():
        started = time.perf_counter()
        symbolicate_payloads(frame, provider)
        elapsed = time.perf_counter() - started
        print(
            f"\n{label}: {frame.height / elapsed:,.0f} events/s ({frame.height} in {elapsed:.2f} s)"
        )


def test_source_lines_added_by_symbolication_are_scrubbed() -> None:
    """A secret hard-coded in the original source must not reach processed events through
    the context lines the map supplies: the whole pipeline scrubs after symbolicating."""
    source = 'const password = "hunter2-in-source";\nfunction pay() {\n  charge();\n}\n'
    sourcemap = {"version": 3, "sources": ["webpack:///./src/pay.js"], "sourcesContent": [source],
                 "names": [], "mappings": "AAAA;AACA"}  # line 2 col 1 -> source line 2 col 1
    event = {"event_id": uuid.uuid4().hex, "platform": "javascript", "release": RELEASE,
             "exception": {"values": [{"type": "Error", "value": "declined", "stacktrace": {
                 "frames": [{"abs_path": "https://shop.example.com/static/js/pay.min.js",
                             "lineno": 2, "colno": 1, "function": "a", "in_app": True}]}}]}}
    provider = DictSourceMaps(release_files={
        (ORG, RELEASE, None, "~/static/js/pay.min.js"): json.dumps(sourcemap).encode()})
    rows = process_raw_events(raw_frame([orjson.dumps(event).decode()]), {}, provider)
    [stacktrace] = rows.events.get_column("stacktrace").to_list()
    [frame] = orjson.loads(stacktrace)[0]["stacktrace"]["frames"]
    assert frame["data"]["symbolicated"] is True
    assert frame["pre_context"] == ['const password = "[Filtered]";']
    assert "hunter2-in-source" not in stacktrace + rows.events.get_column("payload")[0]
