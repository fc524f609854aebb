"""Symbolication: map minified JavaScript stack frames back to their original source.

Stage 2 of the pipeline (see pipelines/README.md). For each event whose stack frames come
from minified JavaScript, find the frame's source map, by the bundle's debug id (listed in
`debug_meta.images` by the SDK) or else by the event's release (+ dist) and the bundle's
URL, and rewrite the frame to the original file, line, column and function, with five lines
of source context on either side taken from the map's `sourcesContent`.

The minified stack trace is kept as `raw_stacktrace` beside each rewritten `stacktrace`,
as Sentry does. Every frame of a processed stack trace gets `data.symbolicated` (true or
false); a frame that could not be mapped also gets `data.symbolication_error`. A missing
map, a corrupt map or a position the map does not cover never fails the event: the frame
just stays minified.

Maps come from an injected `SourceMapProvider` (the blob store in production, a dict in
tests) and are parsed with `symbolic` (Sentry's own Rust source-map library). Parsed maps
are kept in a `SourceMapCache` so a map shared by many events is fetched and parsed once.

Function names: symbolic resolves the original name of the *enclosing* function only when
given the minified file's text, which the provider does not supply. Instead, the function of
a frame is named by its caller: the caller frame points at the call expression, and the
map's token there carries the original name of the function being called (`checkout(cart)`
→ `checkout`). A frame whose caller could not be mapped keeps its minified name.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import orjson
import polars as pl
from symbolic import SourceMapView, SymbolicError

log = logging.getLogger(__name__)

CONTEXT_LINES = 5
# Longer context lines (minified vendor code inlined as a "source") are cut around the
# column, so one frame cannot carry megabytes of text into the processed event.
MAX_CONTEXT_LINE_CHARS = 150

JAVASCRIPT_PLATFORMS = frozenset({"javascript", "node"})

# Cheap vectorized pre-filter on the raw JSON text: only rows that match are parsed. It may
# let through a few events that are not JavaScript (they are checked again after parsing),
# but never drops one that is.
_PAYLOAD_HINT = (
    r'"platform"\s*:\s*"(?:javascript|node)"'
    r"|\.(?:[cm]?jsx?|bundle)[?#\x22]"
    r'|"sourcemap"'
)
_JS_PATH = re.compile(r"\.(?:[cm]?jsx?|bundle)(?:[?#]|$)")
# Frames that no uploaded map can describe: Node's own modules, V8 natives, eval code.
_NEVER_MAPPED_PREFIXES = ("node:", "native", "<", "[")
_SOURCE_MAPPING_URL = re.compile(rb"//[#@]\s*sourceMappingURL=(\S+)\s*$")


# --- where maps come from -------------------------------------------------------------------


class SourceMapProvider(Protocol):
    """Fetches raw source-map JSON. Injected, so this module never touches storage itself.

    Return None when there is no such map. Raise only for real storage failures: an
    exception from the provider fails the batch (so it is retried) instead of silently
    storing unsymbolicated events.
    """

    def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
        """The map uploaded with this debug id (lowercase, hyphenated UUID)."""
        ...

    def by_release(
        self, organization_id: int, release: str, dist: str | None, url: str
    ) -> bytes | None:
        """The map of the minified file served at `url` (a frame's abs_path) in a release.

        Match artifact names with `artifact_names_for_url(url)`, in that order.
        """
        ...


def artifact_names_for_url(url: str) -> list[str]:
    """Artifact names under which a file served at `url` may have been uploaded, best first.

    Users upload release files either under the full URL or as `~/path` (scheme and host
    stripped, so one upload serves every host), each with or without the query string:
    `https://cdn.example.com/static/app.min.js?v=3` gives the full URL, the full URL without
    `?v=3`, `~/static/app.min.js?v=3` and `~/static/app.min.js`. Fragments are never part
    of a name (browsers do not send them to servers).
    """
    names: list[str] = [url]
    without_fragment = url.split("#", 1)[0]
    without_query = without_fragment.split("?", 1)[0]
    names += [without_fragment, without_query]

    parts = urlsplit(without_fragment)
    if "://" in without_fragment:
        path = parts.path  # scheme and host (also the empty host of app:///) dropped
    elif without_fragment.startswith("/"):
        path = parts.path  # a bare server path, as Node reports its files
    else:
        path = ""
    if path:
        tilde = "~" + (path if path.startswith("/") else "/" + path)
        if parts.query:
            names.append(f"{tilde}?{parts.query}")
        names.append(tilde)
    return list(dict.fromkeys(name for name in names if name))


def normalize_debug_id(value: object) -> str | None:
    """A debug id as the lowercase hyphenated UUID used as storage key; None if invalid."""
    return _normalize_debug_id(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=4096)
def _normalize_debug_id(value: str) -> str | None:
    # Cached: every event of a bundle repeats the same id, and parsing a UUID is not free.
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


def debug_id_of_sourcemap(data: bytes) -> str | None:
    """The debug id written into a map by Sentry-style tooling (`debugId` or `debug_id`).

    For the upload side: store the map under this id so `by_debug_id` finds it.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    return normalize_debug_id(document.get("debugId")) or normalize_debug_id(
        document.get("debug_id")
    )


def source_mapping_url(bundle: bytes) -> str | None:
    """The `//# sourceMappingURL=` of a minified file (its last such comment), if any.

    For the upload side: tells which uploaded map belongs to an uploaded minified file.
    Inline `data:` URLs are returned as they are.
    """
    for line in reversed(bundle.rstrip().splitlines()[-5:]):
        match = _SOURCE_MAPPING_URL.search(line)
        if match:
            return match.group(1).decode("utf-8", "replace")
    return None


# --- parsed maps and their cache -----------------------------------------------------------


class MapMissing(Enum):
    """Why no map could be used; recorded on the frame as `data.symbolication_error`."""

    NOT_FOUND = "missing_sourcemap"
    INVALID = "invalid_sourcemap"


@dataclass(frozen=True)
class OriginalPosition:
    """Where a minified position comes from, with everything a frame needs from the map."""

    source: str  # the map's `sources` entry, as written (after `sourceRoot`)
    filename: str  # the same, cleaned to a project-relative path
    lineno: int  # 1-based, as in events
    colno: int
    name: str | None  # original identifier at this position: the callee at a call site
    function_name: str | None
    pre_context: tuple[str, ...] | None  # None when the map has no `sourcesContent`
    context_line: str | None
    post_context: tuple[str, ...] | None


@dataclass
class ParsedSourceMap:
    """A parsed map, with memos of what was already looked up in it.

    Most events of a batch repeat the same few frames, so each position is resolved (token,
    names, context lines) once per map and then served from `_positions`.
    """

    view: SourceMapView
    size: int  # bytes of map JSON: what the cache budget counts
    _positions: dict[tuple[int, int], OriginalPosition | None] = field(
        default_factory=dict, repr=False
    )
    _sources: dict[int, list[str] | None] = field(default_factory=dict, repr=False)

    MAX_MEMO_POSITIONS: ClassVar[int] = 20_000

    def resolve(self, line0: int, col0: int) -> OriginalPosition | None:
        """The original position of a 0-based minified (line, column); None if unmapped."""
        key = (line0, col0)
        if key in self._positions:
            return self._positions[key]
        position = self._lookup(line0, col0)
        if len(self._positions) >= self.MAX_MEMO_POSITIONS:
            self._positions.clear()  # crude bound; a real batch never gets near it
        self._positions[key] = position
        return position

    def _lookup(self, line0: int, col0: int) -> OriginalPosition | None:
        # symbolic answers a position past the end of a line, or on a line without mappings,
        # with the nearest earlier token, possibly on another line: only a token on the
        # frame's own line describes the frame.
        token = self.view.lookup(line0, col0)
        if token is None or token.dst_line != line0 or not token.src:
            return None
        lines = self._source_lines(token.src_id)
        pre: tuple[str, ...] | None = None
        line: str | None = None
        post: tuple[str, ...] | None = None
        if lines is not None and token.src_line < len(lines):
            here, col = token.src_line, token.src_col
            first = max(0, here - CONTEXT_LINES)
            pre = tuple(_trim_line(text, col) for text in lines[first:here])
            line = _trim_line(lines[here], col)
            post = tuple(
                _trim_line(text, col) for text in lines[here + 1 : here + 1 + CONTEXT_LINES]
            )
        return OriginalPosition(
            source=token.src,
            filename=_original_filename(token.src),
            lineno=token.src_line + 1,
            colno=token.src_col + 1,
            name=token.name,
            function_name=token.function_name,
            pre_context=pre,
            context_line=line,
            post_context=post,
        )

    def _source_lines(self, src_id: int | None) -> list[str] | None:
        """One embedded original file as lines, split once (symbolic's SourceView would
        cost a native call per line)."""
        if src_id is None:
            return None
        if src_id not in self._sources:
            text = self.view.get_source_contents(src_id)
            lines = text.split("\n") if text else None
            if lines and lines[-1] == "":
                lines.pop()  # the "line" after a final newline
            self._sources[src_id] = lines
        return self._sources[src_id]


# (kind, organization_id, debug id) or (kind, organization_id, release, dist, url)
CacheKey = tuple[str, int, str] | tuple[str, int, str, str | None, str]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0  # lookups that had to call the provider
    parses: int = 0  # maps parsed successfully
    invalid: int = 0  # maps that failed to parse
    evictions: int = 0


@dataclass
class _Entry:
    value: ParsedSourceMap | MapMissing
    size: int
    expires_at: float | None  # None: kept until evicted


class SourceMapCache:
    """LRU cache of parsed source maps, including "no usable map" answers.

    Bounded by entry count and by the total size of the cached maps' JSON (the parsed form,
    and the memos each `ParsedSourceMap` keeps, are of the same order). Missing and corrupt
    maps are cached as negative entries, so a batch with a thousand frames of an unmapped
    bundle asks storage once, but only for `negative_ttl_seconds`: a map uploaded after the
    first error is picked up soon.
    Release artifacts can be re-uploaded under the same name, so they are re-fetched after
    `release_ttl_seconds`; maps found by debug id never change and stay until evicted.
    Safe to share between threads.
    """

    def __init__(
        self,
        max_entries: int = 512,
        max_bytes: int = 256 * 1024 * 1024,
        negative_ttl_seconds: float = 60.0,
        release_ttl_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.negative_ttl_seconds = negative_ttl_seconds
        self.release_ttl_seconds = release_ttl_seconds
        self.stats = CacheStats()
        self._clock = clock
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def get(self, key: CacheKey, fetch: Callable[[], bytes | None]) -> ParsedSourceMap | MapMissing:
        """The parsed map for `key`, calling `fetch` (the provider) only on a cache miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.expires_at is None or entry.expires_at > self._clock()):
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry.value
            self.stats.misses += 1

        # Fetch and parse outside the lock: both can be slow, and two threads missing the
        # same key at once only costs a duplicate parse.
        data = fetch()
        value = MapMissing.NOT_FOUND if data is None else _parse(data)
        ttl: float | None
        if isinstance(value, MapMissing):
            ttl = self.negative_ttl_seconds
        elif key[0] == "release":
            ttl = self.release_ttl_seconds
        else:
            ttl = None
        self._store(key, value, ttl)
        return value

    def _store(self, key: CacheKey, value: ParsedSourceMap | MapMissing, ttl: float | None) -> None:
        size = value.size if isinstance(value, ParsedSourceMap) else 0
        with self._lock:
            if isinstance(value, ParsedSourceMap):
                self.stats.parses += 1
            elif value is MapMissing.INVALID:
                self.stats.invalid += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            expires_at = None if ttl is None else self._clock() + ttl
            self._entries[key] = _Entry(value, size, expires_at)
            self._bytes += size
            # The newest entry always stays, even if it alone exceeds max_bytes: it is in use.
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size
                self.stats.evictions += 1


def _parse(data: bytes) -> ParsedSourceMap | MapMissing:
    try:
        view = SourceMapView.from_json_bytes(data)
    except (SymbolicError, ValueError, TypeError) as error:
        log.info("unusable source map (%d bytes): %s", len(data), error)
        return MapMissing.INVALID
    return ParsedSourceMap(view=view, size=len(data))


# --- the pipeline stage --------------------------------------------------------------------


def symbolicate_payloads(
    frame: pl.DataFrame,
    source_maps: SourceMapProvider,
    cache: SourceMapCache | None = None,
) -> pl.DataFrame:
    """Rewrite the JavaScript stack frames of each event's `payload` to original source.

    Returns the frame with the same columns and rows, in order; only `payload` changes, and
    only for events with JavaScript frames. Pass a long-lived `cache` to keep parsed maps
    across batches; without one, each map is still parsed at most once in this batch.
    """
    if frame.height == 0:
        return frame
    if cache is None:
        cache = SourceMapCache()
    payload = pl.col("payload")
    candidates = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
        pl.col("organization_id"),
        payload,
    ).filter(
        payload.str.contains('"stacktrace"', literal=True) & payload.str.contains(_PAYLOAD_HINT)
    )
    if candidates.height == 0:
        return frame

    symbolicator = _Symbolicator(source_maps, cache)
    rows: list[int] = []
    new_payloads: list[str] = []
    # Plain lists rather than iter_rows: the per-row tuples cost more than the rows' own work.
    for row, organization_id, text in zip(
        candidates.get_column("row").to_list(),
        candidates.get_column("organization_id").to_list(),
        candidates.get_column("payload").to_list(),
        strict=True,
    ):
        rewritten = symbolicator.payload(int(organization_id), text)
        if rewritten is not None:
            rows.append(row)
            new_payloads.append(rewritten)
    if not rows:
        return frame
    column = frame.get_column("payload").clone()
    column.scatter(rows, new_payloads)
    return frame.with_columns(column)


class _ProviderFailure(Exception):
    """Carries a storage error past the per-event safety net, to fail the batch."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


# What a bundle URL means for the frames that point into it, in one context (organization,
# release, dist, debug images): a map to resolve positions in, or, for a bundle without a
# usable map, the `data` every such frame gets.
_UrlVerdict = dict[str, Any] | tuple["ParsedSourceMap", str, str | None]


@dataclass
class _EventMaps:
    """What an event says about where its maps are. Shared by the events of a batch that
    say the same, with what was decided for each bundle URL."""

    organization_id: int
    release: str | None
    dist: str | None
    debug_ids: dict[str, str]  # bundle URL (code_file) → debug id
    by_url: dict[str, _UrlVerdict] = field(default_factory=dict, repr=False)


@dataclass
class _Resolution:
    """A frame's lookup result; `token_name` names the function the frame is calling."""

    symbolicated: bool
    token_name: str | None = None
    original: dict[str, Any] | None = None  # a rewritten frame as it came


_ABSENT = object()  # a frame without `data`
_FRAME_PLATFORMS = (None, *sorted(JAVASCRIPT_PLATFORMS))  # a frame's own platform, if any
_NEVER_MAPPED_DATA: dict[str, Any] = {"symbolicated": False}


def _as_it_came(frame: Any, came_data: dict[int, Any], originals: dict[int, dict[str, Any]]) -> Any:
    """A frame as it came: its copy from before it was rewritten, or the frame with its
    `data` as it was (not noted: none). Anything but a dict was never changed."""
    if not isinstance(frame, dict):
        return frame
    original = originals.get(id(frame))
    if original is not None:
        return original
    return _with_data(frame, came_data.get(id(frame), _ABSENT))


def _with_data(frame: dict[str, Any], data: Any) -> dict[str, Any]:
    """A copy of `frame` with its `data` as it was (`_ABSENT`: none)."""
    copy = {key: value for key, value in frame.items() if key != "data"}
    if data is not _ABSENT:
        copy["data"] = data
    return copy


class _Symbolicator:
    # Tests turn the quick path for common frames off to check it against the general path.
    quick: ClassVar[bool] = True

    def __init__(self, provider: SourceMapProvider, cache: SourceMapCache) -> None:
        self.provider = provider
        self.cache = cache
        self._found_in_batch: dict[
            tuple[int, str | None, str | None, str, str | None],
            tuple[ParsedSourceMap | MapMissing, str, str | None],
        ] = {}
        # Events of a batch mostly share a release and their bundles: each distinct context
        # is one _EventMaps, so its per-URL verdicts serve every such event.
        self._contexts: dict[tuple[Any, ...], _EventMaps] = {}

    def payload(self, organization_id: int, text: str) -> str | None:
        """The rewritten payload, or None to keep the original text unchanged."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(event, dict):
            return None
        try:
            changed = self.event(organization_id, event)
        except _ProviderFailure as failure:
            raise failure.error from None
        except Exception:
            # An event shaped in a way this code did not foresee: keep it as it came, the
            # rest of the batch goes on.
            log.exception("symbolication skipped an event it could not process")
            return None
        return orjson.dumps(event).decode() if changed else None

    def event(self, organization_id: int, event: dict[str, Any]) -> bool:
        """Symbolicate `event` (as orjson parsed it) in place; True if anything was written."""
        stacktraces = _stacktrace_holders(event)
        if not stacktraces:
            return False
        if event.get("platform") not in JAVASCRIPT_PLATFORMS and not any(
            _JS_PATH.search(url)
            for _, stacktrace in stacktraces
            for frame in stacktrace["frames"]
            if (url := _frame_url(frame))
        ):
            return False
        release, dist = event.get("release"), event.get("dist")
        if not isinstance(release, str) or not release:
            release = None
        if not isinstance(dist, str) or not dist:
            dist = None
        debug_ids = _debug_images(event) if "debug_meta" in event else {}
        context = (organization_id, release, dist, *debug_ids.items())
        maps = self._contexts.get(context)
        if maps is None:
            maps = self._contexts[context] = _EventMaps(organization_id, release, dist, debug_ids)
        for holder, stacktrace in stacktraces:
            self.stacktrace(maps, holder, stacktrace)
        return True

    def stacktrace(
        self, maps: _EventMaps, holder: dict[str, Any], stacktrace: dict[str, Any]
    ) -> None:
        frames: list[Any] = stacktrace["frames"]
        if not frames:
            return
        # The frames as they came, for `raw_stacktrace` once one is rewritten: copying them
        # all up front cost more than the whole stage does for the events of apps without
        # maps. Only frames taking the general path are noted (by identity: the frames of a
        # parsed event are distinct objects); a frame of the quick path had no `data`.
        came_data: dict[int, Any] = {}
        originals: dict[int, dict[str, Any]] = {}
        any_symbolicated = False
        # Frames run from the outermost call to the innermost, so the frame before this one
        # is its caller; see the module docstring on function names.
        caller: _Resolution | None = None
        by_url, quick = maps.by_url, self.quick
        for frame in frames:
            # The quick path, for the common frame: a dict without `data` or `platform`, an
            # int line and column and a string URL, decided by its bundle's verdict alone.
            # Anything else takes the general path (`frame`), which has the final say.
            if quick and type(frame) is dict and "data" not in frame and "platform" not in frame:
                lineno, colno = frame.get("lineno"), frame.get("colno")
                if type(lineno) is int and type(colno) is int and lineno > 0 and colno > 0:
                    url = frame.get("abs_path")
                    if not url or type(url) is not str:
                        url = frame.get("filename")
                    if url and type(url) is str:
                        verdict = by_url.get(url) or self._verdict(maps, url)
                        if type(verdict) is dict:
                            # Shared by the frames of this bundle: `data` dicts are replaced,
                            # never changed in place, and the event is dumped right after.
                            frame["data"] = verdict
                            caller = None  # an unmapped caller names no function
                            continue
                        resolution = self.rewrite(frame, {}, verdict, url, caller)
                        if resolution.original is not None:
                            originals[id(frame)] = resolution.original
                        any_symbolicated = any_symbolicated or resolution.symbolicated
                        caller = resolution
                        continue
            if not isinstance(frame, dict):
                caller = None
                continue
            came_data[id(frame)] = frame.get("data", _ABSENT)
            resolution = self.frame(maps, frame, caller)
            if resolution.original is not None:
                originals[id(frame)] = resolution.original
            any_symbolicated = any_symbolicated or resolution.symbolicated
            caller = resolution
        if any_symbolicated and "raw_stacktrace" not in holder:
            holder["raw_stacktrace"] = {
                **stacktrace,
                "frames": [_as_it_came(frame, came_data, originals) for frame in frames],
            }

    def _verdict(self, maps: _EventMaps, url: str) -> _UrlVerdict:
        """Decide, once per context, what a bundle URL means for its frames."""
        verdict: _UrlVerdict
        if url.startswith(_NEVER_MAPPED_PREFIXES):
            verdict = _NEVER_MAPPED_DATA
        else:
            found, resolved_with, debug_id = self.find_map(maps, url)
            if isinstance(found, MapMissing):
                verdict = {"symbolicated": False, "symbolication_error": found.value}
            else:
                verdict = (found, resolved_with, debug_id)
        maps.by_url[url] = verdict
        return verdict

    def _map_for(
        self, maps: _EventMaps, frame: dict[str, Any]
    ) -> tuple[ParsedSourceMap | MapMissing | None, str, str | None]:
        """The map for a frame (None: no map could describe it), how it was found, and the
        debug id it was found by."""
        url = _frame_url(frame)
        lineno, colno = frame.get("lineno"), frame.get("colno")
        if (
            url is None
            or url.startswith(_NEVER_MAPPED_PREFIXES)
            or not _positive_int(lineno)
            or not _positive_int(colno)  # a line alone is ambiguous in a one-line bundle
            or frame.get("platform") not in _FRAME_PLATFORMS
        ):
            return None, "", None
        return self.find_map(maps, url)

    def frame(
        self, maps: _EventMaps, frame: dict[str, Any], caller: _Resolution | None
    ) -> _Resolution:
        """The general path for one frame, whatever its shape."""
        data = frame.get("data")
        if not isinstance(data, dict):
            data = {}
        elif data.get("symbolicated") is True:
            return _Resolution(True)  # already done (a payload processed twice)

        found, resolved_with, debug_id = self._map_for(maps, frame)
        if found is None:
            frame["data"] = {**data, "symbolicated": False}
            return _Resolution(False)
        if isinstance(found, MapMissing):
            frame["data"] = {**data, "symbolicated": False, "symbolication_error": found.value}
            return _Resolution(False)
        return self.rewrite(
            frame, data, (found, resolved_with, debug_id), _frame_url(frame) or "", caller
        )

    def rewrite(
        self,
        frame: dict[str, Any],
        data: dict[str, Any],
        found: tuple[ParsedSourceMap, str, str | None],
        url: str,
        caller: _Resolution | None,
    ) -> _Resolution:
        """Rewrite a frame with a map to its original position, if the map covers it."""
        parsed, resolved_with, debug_id = found
        lineno, colno = frame["lineno"], frame["colno"]
        data = dict(data)
        position = parsed.resolve(lineno - 1, colno - 1)  # frames are 1-based, maps 0-based
        if position is None:
            frame["data"] = {**data, "symbolicated": False, "symbolication_error": "no_mapping"}
            return _Resolution(False)

        original = dict(frame)
        frame["abs_path"] = _join_source_url(url, position.source)
        frame["filename"] = position.filename
        frame["lineno"] = position.lineno
        frame["colno"] = position.colno
        function = position.function_name or (caller.token_name if caller else None)
        if function:
            frame["function"] = function
        if "module" in frame:
            # The SDK derived it from the bundle's name; it should follow the original file.
            frame["module"] = posixpath.splitext(position.filename)[0]
        if position.filename.startswith("node_modules/") or "/node_modules/" in position.filename:
            frame["in_app"] = False  # the bundle is the app's, but this code is a dependency
        if position.context_line is None:
            # Context the SDK read from the minified file would mislead at the new position.
            for key in ("pre_context", "context_line", "post_context"):
                frame.pop(key, None)
        else:
            frame["pre_context"] = list(position.pre_context or ())
            frame["context_line"] = position.context_line
            frame["post_context"] = list(position.post_context or ())
        data.pop("symbolication_error", None)
        data.update(symbolicated=True, resolved_with=resolved_with)
        if debug_id:
            data["debug_id"] = debug_id
        frame["data"] = data
        return _Resolution(True, position.name, original)

    def find_map(
        self, maps: _EventMaps, url: str
    ) -> tuple[ParsedSourceMap | MapMissing, str, str | None]:
        """The map for a bundle URL: by debug id first, else by release and URL. Looked up
        once per batch: the frames of one bundle, and events of one release, share it."""
        key = (
            maps.organization_id,
            maps.release,
            maps.dist,
            url,
            maps.debug_ids.get(url) or maps.debug_ids.get(_strip_query(url)),
        )
        found = self._found_in_batch.get(key)
        if found is None:
            found = self._found_in_batch[key] = self._find_map(maps, url)
        return found

    def _find_map(
        self, maps: _EventMaps, url: str
    ) -> tuple[ParsedSourceMap | MapMissing, str, str | None]:
        org = maps.organization_id
        result: ParsedSourceMap | MapMissing = MapMissing.NOT_FOUND
        debug_id = maps.debug_ids.get(url) or maps.debug_ids.get(_strip_query(url))
        if debug_id is not None:
            result = self.cache.get(
                ("debug_id", org, debug_id),
                lambda: self._fetch(self.provider.by_debug_id, org, debug_id),
            )
            if isinstance(result, ParsedSourceMap):
                return result, "debug_id", debug_id
        if maps.release is not None:
            release, dist = maps.release, maps.dist
            by_release = self.cache.get(
                ("release", org, release, dist, url),
                lambda: self._fetch(self.provider.by_release, org, release, dist, url),
            )
            # A corrupt map found by debug id is worth reporting over a missing release file.
            if isinstance(by_release, ParsedSourceMap) or result is MapMissing.NOT_FOUND:
                result = by_release
        return result, "release", None

    @staticmethod
    def _fetch(method: Callable[..., bytes | None], *args: Any) -> bytes | None:
        try:
            return method(*args)
        except Exception as error:
            raise _ProviderFailure(error) from error


# --- event shape helpers -------------------------------------------------------------------


def _stacktrace_holders(event: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(holder, stacktrace) for each exception and thread that has frames."""
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for section in ("exception", "threads"):
        container = event.get(section)
        if container is None:
            continue
        # Sentry accepts both {"values": [...]} and a bare list here.
        values = container.get("values") if isinstance(container, dict) else container
        if not isinstance(values, list):
            continue
        for holder in values:
            if not isinstance(holder, dict):
                continue
            stacktrace = holder.get("stacktrace")
            if isinstance(stacktrace, dict) and isinstance(stacktrace.get("frames"), list):
                found.append((holder, stacktrace))
    return found


def _debug_images(event: dict[str, Any]) -> dict[str, str]:
    """code_file → debug id for the `sourcemap` images the SDK listed."""
    debug_meta = event.get("debug_meta")
    images = debug_meta.get("images") if isinstance(debug_meta, dict) else None
    if not isinstance(images, list):
        return {}
    found: dict[str, str] = {}
    for image in images:
        if not isinstance(image, dict) or image.get("type") != "sourcemap":
            continue
        code_file = image.get("code_file")
        debug_id = normalize_debug_id(image.get("debug_id"))
        if isinstance(code_file, str) and code_file and debug_id:
            found.setdefault(code_file, debug_id)
            found.setdefault(_strip_query(code_file), debug_id)
    return found


def _frame_url(frame: Any) -> str | None:
    if not isinstance(frame, dict):
        return None
    for key in ("abs_path", "filename"):
        value = frame.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _strip_query(url: str) -> str:
    return url.split("#", 1)[0].split("?", 1)[0]


@functools.lru_cache(maxsize=4096)
def _join_source_url(bundle_url: str, source: str) -> str:
    """The absolute location of an original source named relative to the bundle.

    Relative `sources` entries are resolved against the bundle's URL (its map normally sits
    beside it; with a debug id the map's own URL is unknown). Done by hand because urljoin
    ignores schemes it does not know, such as `app:///` of React Native and Electron.
    """
    if "://" in source or source.startswith("data:"):
        return source
    parts = urlsplit(bundle_url)
    base_path = parts.path if "://" in bundle_url else _strip_query(bundle_url)
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base_path), source))
    if path.startswith("//"):
        path = path[1:]  # normpath keeps a leading "//", which would read as a host
    if "://" in bundle_url:
        return f"{parts.scheme}://{parts.netloc}{path}"
    return path


def _original_filename(source: str) -> str:
    """A readable project-relative path for a map's `sources` entry.

    `../../src/cart.js`, `webpack:///./src/cart.js`, `webpack://shop/./src/cart.js` and
    `https://example.com/src/cart.js` all become `src/cart.js`.
    """
    path = source
    if "://" in source:
        scheme, rest = source.split("://", 1)
        if scheme in ("http", "https"):
            path = urlsplit(source).path
        elif not rest.startswith("/") and "/" in rest:
            path = rest.split("/", 1)[1]  # webpack://<namespace>/...
        else:
            path = rest
    path = posixpath.normpath(path)
    while path.startswith(("../", "/")):
        path = path[3:] if path.startswith("../") else path[1:]
    return path or source


def _trim_line(line: str, col0: int) -> str:
    """Cut a long line to a window around the column, marking the cuts with `{snip}`."""
    line = line.rstrip("\r\n")
    if len(line) <= MAX_CONTEXT_LINE_CHARS:
        return line
    start = min(max(col0 - MAX_CONTEXT_LINE_CHARS // 2, 0), len(line) - MAX_CONTEXT_LINE_CHARS)
    end = start + MAX_CONTEXT_LINE_CHARS
    window = line[start:end]
    if start > 0:
        window = "{snip} " + window
    if end < len(line):
        window += " {snip}"
    return window
