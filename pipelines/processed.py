"""Rows for the processed ClickHouse tables (`events`, `transactions`, `feedback`), built from
scrubbed, symbolicated and fingerprinted events.

Each builder reads the event JSON once per row and returns a frame whose columns are exactly
the table's, so orchestration inserts it as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from itertools import accumulate, chain
from operator import itemgetter
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson
import polars as pl
import pyarrow as pa

from core.levels import SENTRY_LEVEL

UTC_MS = pl.Datetime("ms", "UTC")
UTC_US = pl.Datetime("us", "UTC")

EVENT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "organization_id": pl.UInt64, "project_id": pl.UInt64, "event_id": pl.Utf8,
    "issue_id": pl.UInt64, "fingerprint_hash": pl.Utf8, "timestamp": UTC_MS,
    "received_at": UTC_MS, "level": pl.Utf8, "platform": pl.Utf8, "title": pl.Utf8,
    "culprit": pl.Utf8, "message": pl.Utf8, "exception_type": pl.Utf8,
    "exception_value": pl.Utf8, "handled": pl.Boolean, "release": pl.Utf8,
    "environment": pl.Utf8, "dist": pl.Utf8, "transaction_name": pl.Utf8, "user_id": pl.Utf8,
    "user_email": pl.Utf8, "user_ip": pl.Utf8, "user_key": pl.Utf8, "browser_name": pl.Utf8,
    "browser_version": pl.Utf8, "os_name": pl.Utf8, "os_version": pl.Utf8,
    "device_family": pl.Utf8, "sdk_name": pl.Utf8, "sdk_version": pl.Utf8, "url": pl.Utf8,
    "tags.key": pl.List(pl.Utf8), "tags.value": pl.List(pl.Utf8),
    "fingerprint": pl.List(pl.Utf8), "stacktrace": pl.Utf8, "breadcrumbs": pl.Utf8,
    "contexts": pl.Utf8, "payload": pl.Utf8,
}

TRANSACTION_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "organization_id": pl.UInt64, "project_id": pl.UInt64, "event_id": pl.Utf8,
    "trace_id": pl.Utf8, "span_id": pl.Utf8, "transaction_name": pl.Utf8, "op": pl.Utf8,
    "status": pl.Utf8, "start_timestamp": UTC_US, "timestamp": UTC_US,
    "duration_ms": pl.Float64, "received_at": UTC_MS, "platform": pl.Utf8, "release": pl.Utf8,
    "environment": pl.Utf8, "user_key": pl.Utf8, "browser_name": pl.Utf8, "os_name": pl.Utf8,
    "device_family": pl.Utf8, "http_method": pl.Utf8, "http_status_code": pl.UInt16,
    "url": pl.Utf8, "measurements.name": pl.List(pl.Utf8),
    "measurements.value": pl.List(pl.Float64), "tags.key": pl.List(pl.Utf8),
    "tags.value": pl.List(pl.Utf8), "spans.op": pl.List(pl.Utf8),
    "spans.description": pl.List(pl.Utf8), "spans.status": pl.List(pl.Utf8),
    "spans.start_offset_ms": pl.List(pl.Float64), "spans.duration_ms": pl.List(pl.Float64),
}

FEEDBACK_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "organization_id": pl.UInt64, "project_id": pl.UInt64, "feedback_id": pl.Utf8,
    "event_id": pl.Utf8, "issue_id": pl.UInt64, "timestamp": UTC_MS, "received_at": UTC_MS,
    "name": pl.Utf8, "contact_email": pl.Utf8, "message": pl.Utf8, "url": pl.Utf8,
    "release": pl.Utf8, "environment": pl.Utf8,
}


# --- small readers of the event JSON --------------------------------------------------------


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any, limit: int = 8192) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        # A list or object where text belongs (a tag set to [1, 2]) reads as its JSON.
        value = orjson.dumps(value).decode() if isinstance(value, list | dict) else str(value)
    return value[:limit]


def level_of(event: dict[str, Any]) -> str:
    """Sentry's five levels from what SDKs send (any case, aliases); error if unknown."""
    return SENTRY_LEVEL.get(text(event.get("level")).strip().lower(), "error")


def parse_timestamp(value: Any, fallback: datetime) -> datetime:
    """Seconds since the epoch or RFC 3339, as SDKs send; anything else is the receive time."""
    parsed = _time_of(value)
    return fallback if parsed is None else parsed


# The times the stores hold: ClickHouse's DateTime64 runs from 1900 to 2299. Beyond, it keeps
# the number but reads garbage days and months of it (the partition of year 9999 is 999912),
# and a time that a UTC offset moves past year 1 or 9999 is no Python datetime, which failed
# storing the issue (and so the window, again and again). Such a time reads as unreadable.
FIRST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
END_TIME = datetime(2300, 1, 1, tzinfo=UTC)
# The quick paths' bound in seconds since the epoch: a second short of END_TIME, so that no
# fraction rounds a time past it there; later times take `_time_of`, as in the general path.
_END_SECONDS = int(END_TIME.timestamp()) - 1


def _time_of(value: Any) -> datetime | None:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if not parsed.tzinfo:
                parsed = parsed.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if FIRST_TIME <= parsed < END_TIME else None


# --- clock drift ----------------------------------------------------------------------------

# A device's clock can be far off: set to the wrong time zone, a year ahead, or reset to 2000
# by a flat battery. Two corrections, as Sentry's Relay makes them:
# 1. An envelope says when the SDK sent it (`sent_at`, by the device's clock); ingest measures
#    how far that is from the receipt (`clock_drift_ms` of the raw row, 0 under 55 minutes:
#    less is taken as the network's delay). Such an event's times move by as much.
# 2. A time still more than a minute after the receipt, or more than 30 days before it, reads
#    as the receive time: one such device would otherwise pin its issue's last seen in the
#    future (its title and culprit would stop following new events) or its first seen years
#    back.
# A transaction moves whole (its start with its end: its duration and its spans, offsets from
# the start, stay). The event keeps what its SDK sent, and says what was done in its `errors`.
CLOCK_DRIFT_COLUMN = "clock_drift_ms"
MAX_SECONDS_AHEAD = 60
MAX_SECONDS_BEHIND = 30 * 86_400
CLOCK_DRIFT, FUTURE_TIMESTAMP, PAST_TIMESTAMP = "clock_drift", "future_timestamp", "past_timestamp"


def corrected_times(rows: pl.DataFrame, raw: pl.DataFrame, item_types: tuple[str, ...],
                    key: str, moved: tuple[str, ...] = (), noted: bool = False) -> pl.DataFrame:
    """`rows`, built from the `raw` rows of `item_types` (their `event_id` is the rows' `key`),
    with the two corrections above. The `moved` columns move with `timestamp`. With `noted`,
    the `payload` of a row corrected gets an entry in its `errors`."""
    return _within_bounds(_drift_corrected(rows, raw, item_types, key, moved, noted), moved,
                          noted)


def _drift_corrected(rows: pl.DataFrame, raw: pl.DataFrame, item_types: tuple[str, ...],
                     key: str, moved: tuple[str, ...], noted: bool) -> pl.DataFrame:
    if rows.is_empty() or CLOCK_DRIFT_COLUMN not in raw.columns:
        return rows
    drifted = raw.filter(pl.col(CLOCK_DRIFT_COLUMN) != 0, pl.col("item_type").is_in(item_types))
    if drifted.is_empty():
        return rows  # every SDK's clock right: the one pass above
    drift = rows.join(
        drifted.unique(subset=["project_id", "event_id"])
        .select("project_id", pl.col("event_id").alias(key), CLOCK_DRIFT_COLUMN),
        on=["project_id", key], how="left", maintain_order="left",
    )[CLOCK_DRIFT_COLUMN].fill_null(0)
    at = drift.ne(0).arg_true()
    if at.is_empty():
        return rows
    shift = pl.duration(milliseconds=pl.lit(drift))
    corrected = rows.with_columns((pl.col(name) + shift).alias(name)
                                  for name in ("timestamp", *moved))
    if not noted:
        return corrected
    return _noted(corrected, at, [
        {"type": CLOCK_DRIFT, "name": "timestamp", "sdk_time": sent.isoformat(),
         "server_time": now.isoformat()}
        for sent, now in zip(rows["timestamp"].gather(at), corrected["timestamp"].gather(at),
                             strict=True)])


def _within_bounds(rows: pl.DataFrame, moved: tuple[str, ...], noted: bool) -> pl.DataFrame:
    if rows.is_empty():
        return rows
    received = pl.col("received_at").cast(rows.schema["timestamp"])
    ahead = pl.col("timestamp") > received + pl.duration(seconds=MAX_SECONDS_AHEAD)
    behind = pl.col("timestamp") < received - pl.duration(seconds=MAX_SECONDS_BEHIND)
    drift = (pl.when(ahead).then(pl.lit(FUTURE_TIMESTAMP))
             .when(behind).then(pl.lit(PAST_TIMESTAMP)).alias("drift"))
    drifts = rows.select(drift).to_series()
    if drifts.null_count() == rows.height:
        return rows  # every time within bounds: the one pass above
    drifted = drifts.is_not_null()
    shift = received - pl.col("timestamp")
    corrected = rows.with_columns(
        pl.when(drifted).then(pl.col(name) + shift).otherwise(pl.col(name)).alias(name)
        for name in ("timestamp", *moved))
    if not noted:
        return corrected
    at = drifted.arg_true()
    return _noted(corrected, at, [
        {"type": kind, "name": "timestamp", "value": sent.isoformat()}
        for kind, sent in zip(drifts.gather(at), rows["timestamp"].gather(at), strict=True)])


def _noted(rows: pl.DataFrame, at: pl.Series, errors: list[dict[str, str]]) -> pl.DataFrame:
    """`rows` with an entry of `errors` added to the `errors` of the payload at each of `at`,
    as Sentry lists what processing changed."""
    payloads = [_with_error(payload, error)
                for payload, error in zip(rows["payload"].gather(at), errors, strict=True)]
    return rows.with_columns(rows["payload"].scatter(at, pl.Series(payloads, dtype=pl.Utf8)))


def _with_error(payload: str, error: dict[str, str]) -> str:
    try:
        event = orjson.loads(payload)
        errors = event.get("errors")
        event["errors"] = [*(errors if isinstance(errors, list) else ()), error]
        return orjson.dumps(event).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, AttributeError):
        return payload  # the row was built from it, so this is not expected: keep it as it is


def exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    exc = event.get("exception")
    values = exc.get("values") if isinstance(exc, dict) else exc
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def message_of(event: dict[str, Any]) -> str:
    for source in (event.get("logentry"), event.get("message")):
        if isinstance(source, dict):
            found = source.get("formatted") or source.get("message")
            if found:
                return text(found)
        elif isinstance(source, str) and source:
            return text(source)
    return ""


def tag_pairs(event: dict[str, Any]) -> list[tuple[str, str]]:
    tags = event.get("tags")
    pairs: Iterable[Any] = (tags.items() if isinstance(tags, dict)
                            else tags if isinstance(tags, list) else [])
    out = []
    for pair in pairs:
        if isinstance(pair, list | tuple) and len(pair) == 2 and pair[0] is not None:
            out.append((text(pair[0], 200), text(pair[1], 200)))
    return out


def user_key(user: dict[str, Any], fallback_ip: str) -> str:
    """Who was affected, for user counts: id, else email, else username, else IP."""
    for field in ("id", "email", "username", "ip_address"):
        if user.get(field) not in (None, ""):
            return f"{field}:{user[field]}"
    return f"ip:{fallback_ip}" if fallback_ip else ""


def _context_names(
    contexts: dict[str, Any], row: dict[str, Any]
) -> tuple[str, str, str, str, str]:
    """Browser, OS and device from the SDK's contexts, else from the parsed User-Agent."""
    browser, os, device = (as_dict(contexts.get(k)) for k in ("browser", "os", "device"))
    return (
        text(browser.get("name")) or row.get("ua_browser") or "",
        text(browser.get("version")) or row.get("ua_browser_version") or "",
        text(os.get("name")) or row.get("ua_os") or "",
        text(os.get("version")) or row.get("ua_os_version") or "",
        text(device.get("model") or device.get("family")) or row.get("ua_device") or "",
    )


# --- the quick path: a typed decode of what the rows read ----------------------------------
#
# msgspec decodes only the fields below and skips the rest of the event in C, where parsing
# all of it with orjson cost more than the rest of a row. The parts stored as JSON text
# (exception values, breadcrumbs, contexts) are kept as `msgspec.Raw`: sliced out of the
# payload, not parsed and dumped again. A slice is the payload's own text: what orjson would
# write when the payload is compact JSON as orjson writes it, the same JSON in other layouts
# (spaces, escapes), which is all readers see: they parse these columns (dashboards/api).
#
# Types are narrow so that the quick path needs none of the general path's care: text is a
# string no longer than the column keeps (no cutting), objects are objects. An event with a
# value of another type or length, or of another shape, fails the decode (or the row raises
# `_NotQuick`) and is read by the general path (`make`) as before. Numbers beyond a double
# (1e400) are the one thing msgspec lets through where orjson refuses the whole event: such
# an event now gets its row (fingerprinting already reads it).


class _NotQuick(Exception):
    """A value the quick path does not read as the general path would."""


def _text(limit: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=limit)]


_Text = _text(8192)
_Time = float | int | str | None
_Tag = _text(200)
_Tags = dict[_Tag, _Tag] | list[tuple[_Tag | None, _Tag | None]] | None
_INT_RANGE = range(-(2**63), 2**64)  # orjson reads integers out of it as floats
_NUMBER = (int, float)  # bool among them, as in the general path


class _Named(msgspec.Struct, gc=False):
    name: _Text | None = None
    version: _Text | None = None


class _Device(msgspec.Struct, gc=False):
    model: _Text | None = None
    family: _Text | None = None


class _User(msgspec.Struct, gc=False):
    id: _Text | int | None = None
    email: _Text | None = None
    username: str | None = None
    ip_address: _Text | None = None


class _Request(msgspec.Struct, gc=False):
    url: _Text | None = None
    method: _text(16) | None = None


def _quick_tags(tags: _Tags) -> dict[str, str]:
    """`tag_pairs` of typed tags, as a dict (the decoder's own when it made one)."""
    if tags is None:
        return {}
    if type(tags) is dict:
        return tags
    return {key: value or "" for key, value in tags if key is not None}


def _quick_user(user: _User | None, client_ip: str | None) -> tuple[str, str, str | None, str]:
    """User id, email, IP and key (`user_key`) of a typed user."""
    if user is None:
        return "", "", client_ip, f"ip:{client_ip}" if client_ip else ""
    user_id = user.id
    if type(user_id) is int:
        if user_id not in _INT_RANGE:
            raise _NotQuick("an id orjson reads as a float")
        user_id = str(user_id)
    ip = user.ip_address or client_ip
    if user_id:
        key = f"id:{user_id}"
    elif user.email:
        key = f"email:{user.email}"
    elif user.username:
        key = f"username:{user.username}"
    elif user.ip_address:
        key = f"ip_address:{user.ip_address}"
    else:
        key = f"ip:{ip}" if ip else ""
    return user_id or "", user.email or "", ip, key


def _quick_us(value: _Time, fallback: int) -> int:
    """`parse_timestamp` in microseconds since the epoch (as is `fallback`)."""
    if type(value) is float and 0.0 <= value < _END_SECONDS:
        # What datetime.fromtimestamp does, without building the datetime (that and its
        # conversion cost a fifth of a row): the fraction of a second rounded half to even to
        # microseconds. A fraction that rounds up to a whole second carries over in the sum.
        seconds = int(value)
        return seconds * 1_000_000 + round((value - seconds) * 1e6)
    if type(value) is int and 0 <= value < _END_SECONDS:
        return value * 1_000_000
    if value is None:
        return fallback
    parsed = _time_of(value)
    return fallback if parsed is None else _epoch_us(parsed)


class _Quick(NamedTuple):
    """A typed decoder of the payload and the row of what it decoded, given the frame's row
    (payload, receive time in microseconds, the other columns the builder reads)."""

    decoder: msgspec.json.Decoder[Any]
    row: Callable[[Any, tuple[Any, ...]], tuple[Any, ...] | None]


def _build(
    frame: pl.DataFrame,
    item_types: tuple[str, ...],
    schema: dict[str, pl.DataType | type[pl.DataType]],
    make: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None],
    reads: tuple[str, ...],
    copied: dict[str, pl.Expr],
    quick: _Quick | None = None,
) -> pl.DataFrame:
    """Rows of `schema`: `copied` columns (expressions over the frame) are taken over by
    Polars as they are, the others are what `make(row, event)` returns from the event's JSON
    and the frame columns in `reads` (those the frame has). Passing the ids, timestamps and
    the payload through Python and back cost about a sixth of the stage.

    `quick`, when given, builds the same row from a typed decode of the payload (see
    `_Quick`); events it does not take go through `make` as before."""
    selected = frame.filter(pl.col("item_type").is_in(item_types))
    computed = [name for name in schema if name not in copied]
    in_computed_order = itemgetter(*computed)
    present = [name for name in reads if name in selected.columns]
    # The quick path reads the receive time as microseconds since the epoch; a frame whose
    # column is of another type (or lacks one `make` reads) has every row built by `make`.
    in_us = quick is not None and len(present) == len(reads) and reads[:2] == (
        "payload", "received_at") and selected.schema["received_at"] in _RECEIVED_TYPES
    values = [selected.get_column(name) for name in present]
    if in_us:
        values[1] = values[1].dt.epoch("us")
    else:
        quick = None
    # Each builder's row as a tuple in `computed` order: JSON text columns as bytes, times as
    # integers of their column's unit (or an SDK's float seconds), lists as any sized
    # iterable; Polars converts each column in bulk (`_series`).
    to_row = _general_row(schema, computed)
    kept: list[int] = []
    built_rows: list[tuple[Any, ...]] = []
    decode, quick_row_of = (quick.decoder.decode, quick.row) if quick else (None, None)
    for index, row in enumerate(zip(*(column.to_list() for column in values), strict=True)):
        if quick_row_of is not None and row[1] is not None:
            try:
                quick_row = quick_row_of(decode(row[0]), row)
            except Exception:  # a shape or value the quick path leaves to `make`
                pass
            else:
                if quick_row is not None:
                    kept.append(index)
                    built_rows.append(quick_row)
                continue
        fields = dict(zip(present, row, strict=True))
        if in_us:
            fields["received_at"] = _from_us(row[1])
        try:
            event = orjson.loads(fields["payload"])
        except orjson.JSONDecodeError:
            # Not JSON, or nested deeper than orjson reads: nothing to build a row from.
            # (What Python's json reads, NaN or a lone surrogate, scrubbing wrote back
            # readable.)
            continue
        if isinstance(event, dict):
            # A shape ingest validation would have refused (a row landed some other way) and
            # `make` fails on raises: the batch isolation sets that event aside, where it is
            # listed and can be reprocessed, rather than it vanishing (see batch.py).
            built = make(fields, event)
            if built is not None:
                kept.append(index)
                built_rows.append(to_row(in_computed_order(built)))
    # Rows transposed to columns in one C pass (appending value by value cost a third of the
    # stage), each column then converted by Polars in bulk.
    columns = list(zip(*built_rows, strict=True)) if built_rows else [() for _ in computed]
    built_frame = pl.DataFrame([_series(name, schema[name], list(column))
                                for name, column in zip(computed, columns, strict=True)])
    if len(kept) < selected.height:
        selected = selected[kept]
    taken = selected.select(expr.cast(schema[name]).alias(name) for name, expr in copied.items())
    return pl.concat([taken, built_frame], how="horizontal").select(list(schema))


_JSON_COLUMNS = frozenset({"stacktrace", "breadcrumbs", "contexts"})
_RECEIVED_TYPES = (pl.Datetime("ms", "UTC"), pl.Datetime("us", "UTC"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)


def _from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch as Arrow counts them: a naive time is UTC, and an offset
    from UTC counts in whole seconds (Arrow drops the microseconds of an offset)."""
    offset = moment.utcoffset()
    if not offset:
        return (moment.replace(tzinfo=None) - _EPOCH_NAIVE) // _ONE_US
    return ((moment.replace(tzinfo=None) - _EPOCH_NAIVE) // _ONE_US
            - (offset.days * 86_400 + offset.seconds) * 1_000_000)


def _general_row(
    schema: dict[str, pl.DataType | type[pl.DataType]], computed: list[str]
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A row of `make` (datetimes, JSON as str) as the quick path gives it: JSON as bytes,
    times as integers of their column's unit (the quick path also gives an SDK's float seconds
    since the epoch, for Polars to convert in bulk)."""
    converts: list[tuple[int, Callable[[Any], Any]]] = []
    for position, name in enumerate(computed):
        if name in _JSON_COLUMNS:
            converts.append((position, str.encode))
        elif isinstance(schema[name], pl.Datetime):
            divisor = 1_000 if schema[name] == UTC_MS else 1
            converts.append((position, lambda moment, divisor=divisor: None if moment is None
                             else _epoch_us(moment) // divisor))

    def to_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for position, convert in converts:
            values[position] = convert(values[position])
        return tuple(values)

    return to_row


def _from_seconds(seconds: pl.Series) -> pl.Series:
    """Microseconds since the epoch of seconds from 0 to _END_SECONDS, rounded as
    datetime.fromtimestamp does (the fraction of a second, half to even): `_quick_us` over a
    whole column."""
    whole = seconds.floor()
    fraction = ((seconds - whole) * 1e6).round(0, mode="half_to_even")
    return whole.cast(pl.Int64) * 1_000_000 + fraction.cast(pl.Int64)


def _series(name: str, dtype: pl.DataType | type[pl.DataType], values: list[Any]) -> pl.Series:
    if name in _JSON_COLUMNS:  # bytes sliced out of the payload: Polars checks the UTF-8
        return pl.Series(name, values, dtype=pl.Binary).cast(pl.Utf8)
    if isinstance(dtype, pl.Datetime):
        times = pl.Series(name, [None if type(value) is float else value for value in values],
                          dtype=pl.Int64)
        if float in map(type, values):
            seconds = pl.Series([value if type(value) is float else None for value in values],
                                dtype=pl.Float64)
            times = times.fill_null(_from_seconds(seconds) // (1_000 if dtype == UTC_MS else 1))
        return times.cast(dtype)
    if isinstance(dtype, pl.List):
        # One flat column and the offsets where each row's list starts: Arrow makes the list
        # column of them at once (Polars converts a list of lists one list at a time).
        inner = pl.Series(list(chain.from_iterable(values)), dtype=dtype.inner).to_arrow()
        offsets = pl.Series(list(accumulate(map(len, values), initial=0)), dtype=pl.Int64)
        lists = pl.from_arrow(pa.LargeListArray.from_arrays(offsets.to_arrow(), inner))
        assert isinstance(lists, pl.Series)
        return lists.cast(dtype).alias(name)
    return pl.Series(name, values, dtype=dtype)


def _copied(*names: str, **renamed: pl.Expr) -> dict[str, pl.Expr]:
    return {**{name: pl.col(name) for name in names}, **renamed}


# --- events ---------------------------------------------------------------------------------


def _event_row(row: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    values = exception_values(event)
    main = values[-1] if values else {}
    mechanism = as_dict(main.get("mechanism"))
    user = as_dict(event.get("user"))
    contexts = as_dict(event.get("contexts"))
    request = as_dict(event.get("request"))
    sdk = as_dict(event.get("sdk"))
    received = row["received_at"]
    browser, browser_version, os, os_version, device = _context_names(contexts, row)
    release, environment = text(event.get("release"), 250), text(event.get("environment"), 64)
    level = level_of(event)
    tags = dict(tag_pairs(event))
    # Tags a user filters by even when the SDK did not set them.
    for name, value in (("level", level), ("release", release), ("environment", environment),
                        ("browser", browser), ("os", os), ("device", device)):
        if value and name not in tags:
            tags[name] = value
    user_ip = text(user.get("ip_address")) or row["client_ip"]
    crumbs = event.get("breadcrumbs")
    return {
        "timestamp": parse_timestamp(event.get("timestamp"), received),
        "level": level,
        "platform": text(event.get("platform")) or "other",
        "message": message_of(event),
        "exception_type": text(main.get("type")),
        "exception_value": text(main.get("value")),
        "handled": mechanism.get("handled") if isinstance(mechanism.get("handled"), bool)
        else None,
        "release": release,
        "environment": environment,
        "dist": text(event.get("dist"), 64),
        "transaction_name": text(event.get("transaction")),
        "user_id": text(user.get("id")),
        "user_email": text(user.get("email")),
        "user_ip": user_ip,
        "user_key": user_key(user, user_ip),
        "browser_name": browser,
        "browser_version": browser_version,
        "os_name": os,
        "os_version": os_version,
        "device_family": device,
        "sdk_name": text(sdk.get("name")) or row["sdk_name"],
        "sdk_version": text(sdk.get("version")) or row["sdk_version"],
        "url": text(request.get("url")),
        "tags.key": list(tags),
        "tags.value": list(tags.values()),
        "fingerprint": [text(f) for f in fingerprint] if isinstance(
            fingerprint := event.get("fingerprint"), list) else [],
        "stacktrace": orjson.dumps(values).decode() if values else "",
        "breadcrumbs": orjson.dumps(
            crumbs.get("values", []) if isinstance(crumbs, dict) else crumbs or []
        ).decode(),
        "contexts": orjson.dumps(contexts).decode(),
    }


_UA_COLUMNS = ("ua_browser", "ua_browser_version", "ua_os", "ua_os_version", "ua_device")
_EVENT_READS = ("payload", "received_at", "client_ip", *_UA_COLUMNS, "sdk_name", "sdk_version")
_EVENT_COPIED = _copied(
    "organization_id", "project_id", "event_id", "fingerprint_hash", "received_at", "title",
    "culprit", "payload",
    issue_id=pl.lit(0),  # assigned once the issue exists: issues.with_issue_ids
)


class _Mechanism(msgspec.Struct, gc=False):
    handled: Any = None


class _ExceptionHead(msgspec.Struct, gc=False):
    """What a row reads of an exception; its stack trace is stored as it came."""

    type: _Text | None = None
    value: _Text | None = None
    mechanism: _Mechanism | None = None


class _Exceptions(msgspec.Struct, gc=False):
    values: list[msgspec.Raw] | None = None


class _Breadcrumbs(msgspec.Struct, gc=False):
    values: msgspec.Raw = msgspec.Raw(b"[]")


class _Message(msgspec.Struct, gc=False):
    formatted: str | None = None
    message: str | None = None


class _Contexts(msgspec.Struct, gc=False):
    browser: _Named | None = None
    os: _Named | None = None
    device: _Device | None = None


class _Event(msgspec.Struct, gc=False):
    timestamp: _Time = None
    level: _Text | None = None
    platform: _Text | None = None
    logentry: _Message | str | None = None
    message: _Message | str | None = None
    exception: _Exceptions | list[msgspec.Raw] | None = None
    release: _text(250) | None = None
    environment: _text(64) | None = None
    dist: _text(64) | None = None
    transaction: _Text | None = None
    user: _User | None = None
    contexts: msgspec.Raw = msgspec.Raw(b"{}")
    request: _Request | None = None
    sdk: _Named | None = None
    tags: _Tags = None
    fingerprint: list[_Text | None] | None = None
    breadcrumbs: _Breadcrumbs | list[msgspec.Raw] | None = None


_EXCEPTION_HEADS = msgspec.json.Decoder(list[_ExceptionHead])
_CONTEXTS = msgspec.json.Decoder(_Contexts | None)


def _quick_context_names(
    contexts: _Contexts | None, row: tuple[Any, ...]
) -> tuple[str, str, str, str, str]:
    """`_context_names` of typed contexts: the SDK's, else what ingest read from the
    User-Agent (the frame's row: ua_browser, ua_browser_version, ua_os, ua_os_version,
    ua_device at 3-7)."""
    if contexts is None:
        browser = os = device = None
    else:
        browser, os, device = contexts.browser, contexts.os, contexts.device
    return (
        (browser is not None and browser.name) or row[3] or "",
        (browser is not None and browser.version) or row[4] or "",
        (os is not None and os.name) or row[5] or "",
        (os is not None and os.version) or row[6] or "",
        (device is not None and (device.model or device.family)) or row[7] or "",
    )


def _quick_message(event: _Event) -> str:
    if event.logentry is None and event.message is None:
        return ""
    for source in (event.logentry, event.message):
        if type(source) is _Message:
            found = source.formatted or source.message
            if found:
                return found[:8192]
        elif source:
            return source[:8192]
    return ""


def _quick_event_row(event: _Event, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """`_event_row` of a typed event, in `_EVENT_COMPUTED` order."""
    exception = event.exception
    values = exception.values if type(exception) is _Exceptions else exception
    if values:
        stacktrace = b"[" + b",".join(values) + b"]"
        # Every value must be an object (the general path drops the others).
        main = _EXCEPTION_HEADS.decode(stacktrace)[-1]
        handled = main.mechanism.handled if main.mechanism is not None else None
        exception_type, exception_value = main.type or "", main.value or ""
    else:
        stacktrace, handled, exception_type, exception_value = b"", None, "", ""
    contexts_text = bytes(event.contexts)
    contexts = _CONTEXTS.decode(contexts_text)
    if contexts is None:
        contexts_text = b"{}"
    crumbs = event.breadcrumbs
    crumbs_text = (b"[]" if crumbs is None else bytes(crumbs.values)
                   if type(crumbs) is _Breadcrumbs else b"[" + b",".join(crumbs) + b"]")
    browser_name, browser_version, os_name, os_version, device_family = (
        _quick_context_names(contexts, row))
    release, environment = event.release or "", event.environment or ""
    level = SENTRY_LEVEL.get((event.level or "").strip().lower(), "error")
    tags = _quick_tags(event.tags)
    # Tags a user filters by even when the SDK did not set them.
    if "level" not in tags:
        tags["level"] = level
    if release and "release" not in tags:
        tags["release"] = release
    if environment and "environment" not in tags:
        tags["environment"] = environment
    if browser_name and "browser" not in tags:
        tags["browser"] = browser_name
    if os_name and "os" not in tags:
        tags["os"] = os_name
    if device_family and "device" not in tags:
        tags["device"] = device_family
    user_id, user_email, user_ip, key = _quick_user(event.user, row[2])
    sdk = event.sdk
    fingerprint = event.fingerprint
    timestamp = event.timestamp
    return (
        # Seconds as most SDKs send them are converted in bulk (`_from_seconds`).
        timestamp if type(timestamp) is float and 0.0 <= timestamp < _END_SECONDS
        else _quick_us(timestamp, row[1]) // 1000,
        level,
        event.platform or "other",
        _quick_message(event),
        exception_type,
        exception_value,
        handled if type(handled) is bool else None,
        release,
        environment,
        event.dist or "",
        event.transaction or "",
        user_id,
        user_email,
        user_ip,
        key,
        browser_name,
        browser_version,
        os_name,
        os_version,
        device_family,
        (sdk is not None and sdk.name) or row[8],
        (sdk is not None and sdk.version) or row[9],
        (event.request is not None and event.request.url) or "",
        tags,  # its keys (a list column takes any sized iterable)
        tags.values(),
        [] if fingerprint is None else fingerprint if None not in fingerprint
        else [part or "" for part in fingerprint],
        stacktrace,
        crumbs_text,
        contexts_text,
    )


_EVENT_COMPUTED = (
    "timestamp", "level", "platform", "message", "exception_type", "exception_value",
    "handled", "release", "environment", "dist", "transaction_name", "user_id", "user_email",
    "user_ip", "user_key", "browser_name", "browser_version", "os_name", "os_version",
    "device_family", "sdk_name", "sdk_version", "url", "tags.key", "tags.value", "fingerprint",
    "stacktrace", "breadcrumbs", "contexts",
)
assert list(_EVENT_COMPUTED) == [name for name in EVENT_SCHEMA if name not in _EVENT_COPIED]
_EVENT_QUICK = _Quick(msgspec.json.Decoder(_Event), _quick_event_row)


def event_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """`events` rows for the error/message events of a fingerprinted frame."""
    rows = _build(frame, ("event",), EVENT_SCHEMA, _event_row, _EVENT_READS, _EVENT_COPIED,
                  _EVENT_QUICK)
    return corrected_times(rows, frame, ("event",), "event_id", noted=True)


# --- transactions ---------------------------------------------------------------------------


def _transaction_row(row: dict[str, Any], event: dict[str, Any]) -> dict[str, Any] | None:
    received = row["received_at"]
    end = parse_timestamp(event.get("timestamp"), received)
    start = parse_timestamp(event.get("start_timestamp"), end)
    contexts = as_dict(event.get("contexts"))
    trace = as_dict(contexts.get("trace"))
    request = as_dict(event.get("request"))
    response = as_dict(contexts.get("response"))
    user = as_dict(event.get("user"))
    browser, _, os, _, device = _context_names(contexts, row)
    measurements = {
        text(name, 64): float(as_dict(m).get("value"))
        for name, m in as_dict(event.get("measurements")).items()
        if isinstance(as_dict(m).get("value"), int | float)
    }
    spans = event.get("spans")
    spans = [s for s in spans if isinstance(s, dict)] if isinstance(spans, list) else []
    span_starts = [parse_timestamp(s.get("start_timestamp"), start) for s in spans]
    span_ends = [parse_timestamp(s.get("timestamp"), st) for s, st in zip(spans, span_starts,
                                                                         strict=True)]
    status_code = response.get("status_code") or as_dict(trace.get("data")).get(
        "http.response.status_code"
    )
    tags = dict(tag_pairs(event))
    return {
        "trace_id": text(trace.get("trace_id"), 64),
        "span_id": text(trace.get("span_id"), 32),
        "transaction_name": text(event.get("transaction"), 1000),
        "op": text(trace.get("op"), 64),
        "status": text(trace.get("status"), 64),
        "start_timestamp": start,
        "timestamp": end,
        "duration_ms": max(0.0, (end - start).total_seconds() * 1000),
        "platform": text(event.get("platform")) or "other",
        "release": text(event.get("release"), 250),
        "environment": text(event.get("environment"), 64),
        "user_key": user_key(user, text(user.get("ip_address")) or row["client_ip"]),
        "browser_name": browser,
        "os_name": os,
        "device_family": device,
        "http_method": text(request.get("method"), 16).upper(),
        "http_status_code": int(status_code) if isinstance(status_code, int) and
        0 <= status_code < 65536 else 0,
        "url": text(request.get("url")),
        "measurements.name": list(measurements),
        "measurements.value": list(measurements.values()),
        "tags.key": list(tags),
        "tags.value": list(tags.values()),
        "spans.op": [text(s.get("op"), 64) for s in spans],
        "spans.description": [text(s.get("description"), 2000) for s in spans],
        "spans.status": [text(s.get("status"), 64) for s in spans],
        "spans.start_offset_ms": [(st - start).total_seconds() * 1000 for st in span_starts],
        "spans.duration_ms": [max(0.0, (en - st).total_seconds() * 1000)
                              for st, en in zip(span_starts, span_ends, strict=True)],
    }


_TRANSACTION_READS = ("payload", "received_at", "client_ip", *_UA_COLUMNS)


_TRANSACTION_COPIED = _copied("organization_id", "project_id", "event_id", "received_at")


class _TraceData(msgspec.Struct, gc=False):
    status_code: Any = msgspec.field(name="http.response.status_code", default=None)


class _Trace(msgspec.Struct, gc=False):
    trace_id: _text(64) | None = None
    span_id: _text(32) | None = None
    op: _text(64) | None = None
    status: _text(64) | None = None
    data: _TraceData | None = None


class _Response(msgspec.Struct, gc=False):
    status_code: Any = None


class _TransactionContexts(_Contexts, gc=False):
    trace: _Trace | None = None
    response: _Response | None = None


class _Measurement(msgspec.Struct, gc=False):
    value: Any = None


class _Span(msgspec.Struct, gc=False):
    op: _text(64) | None = None
    description: _text(2000) | None = None
    status: _text(64) | None = None
    start_timestamp: _Time = None
    timestamp: _Time = None


class _Transaction(msgspec.Struct, gc=False):
    timestamp: _Time = None
    start_timestamp: _Time = None
    transaction: _text(1000) | None = None
    platform: _Text | None = None
    release: _text(250) | None = None
    environment: _text(64) | None = None
    user: _User | None = None
    contexts: _TransactionContexts | None = None
    request: _Request | None = None
    measurements: dict[_text(64), _Measurement | None] | None = None
    tags: _Tags = None
    spans: list[_Span] | None = None


def _quick_transaction_row(event: _Transaction, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """`_transaction_row` of a typed transaction, in `_TRANSACTION_COMPUTED` order; times in
    microseconds since the epoch, durations from their difference as timedelta gives them."""
    end = _quick_us(event.timestamp, row[1])
    start = _quick_us(event.start_timestamp, end)
    contexts = event.contexts
    if contexts is None:
        trace = response = None
    else:
        trace, response = contexts.trace, contexts.response
    browser_name, _, os_name, _, device_family = _quick_context_names(contexts, row)
    if trace is None:
        trace = _NO_TRACE
    measurements: dict[str, float] = {}
    for name, measurement in (event.measurements or {}).items():
        value = measurement.value if measurement is not None else None
        if isinstance(value, _NUMBER):
            if type(value) is int and value not in _INT_RANGE:
                raise _NotQuick("a value orjson reads as a float")
            measurements[name] = float(value)
    ops: list[str] = []
    descriptions: list[str] = []
    statuses: list[str] = []
    offsets: list[float] = []
    durations: list[float] = []
    for span in event.spans or ():
        span_start = _quick_us(span.start_timestamp, start)
        ops.append(span.op or "")
        descriptions.append(span.description or "")
        statuses.append(span.status or "")
        offsets.append((span_start - start) / 1_000_000 * 1000)
        durations.append(max(0.0, (_quick_us(span.timestamp, span_start) - span_start)
                             / 1_000_000 * 1000))
    status_code = (response is not None and response.status_code) or (
        trace.data is not None and trace.data.status_code) or None
    tags = _quick_tags(event.tags)
    request = event.request
    return (
        trace.trace_id or "",
        trace.span_id or "",
        event.transaction or "",
        trace.op or "",
        trace.status or "",
        start,
        end,
        max(0.0, (end - start) / 1_000_000 * 1000),
        event.platform or "other",
        event.release or "",
        event.environment or "",
        _quick_user(event.user, row[2])[3],
        browser_name,
        os_name,
        device_family,
        ((request is not None and request.method) or "").upper(),
        int(status_code) if isinstance(status_code, int) and 0 <= status_code < 65536 else 0,
        (request is not None and request.url) or "",
        measurements,
        measurements.values(),
        tags,
        tags.values(),
        ops,
        descriptions,
        statuses,
        offsets,
        durations,
    )


_NO_TRACE = _Trace()
_TRANSACTION_COMPUTED = (
    "trace_id", "span_id", "transaction_name", "op", "status", "start_timestamp", "timestamp",
    "duration_ms", "platform", "release", "environment", "user_key", "browser_name", "os_name",
    "device_family", "http_method", "http_status_code", "url", "measurements.name",
    "measurements.value", "tags.key", "tags.value", "spans.op", "spans.description",
    "spans.status", "spans.start_offset_ms", "spans.duration_ms",
)
assert list(_TRANSACTION_COMPUTED) == [name for name in TRANSACTION_SCHEMA
                                       if name not in _TRANSACTION_COPIED]
_TRANSACTION_QUICK = _Quick(msgspec.json.Decoder(_Transaction), _quick_transaction_row)


def transaction_rows(frame: pl.DataFrame) -> pl.DataFrame:
    rows = _build(frame, ("transaction",), TRANSACTION_SCHEMA, _transaction_row,
                  _TRANSACTION_READS, _TRANSACTION_COPIED, _TRANSACTION_QUICK)
    return corrected_times(rows, frame, ("transaction",), "event_id",
                           moved=("start_timestamp",))


# --- feedback -------------------------------------------------------------------------------


_EVENT_ID = re.compile(r"[0-9a-f]{32}")


def _feedback_row(row: dict[str, Any], event: dict[str, Any]) -> dict[str, Any] | None:
    received = row["received_at"]
    if row["item_type"] == "user_report":  # the legacy crash-report dialog
        name, email, message = event.get("name"), event.get("email"), event.get("comments")
        linked, url = event.get("event_id"), ""
    else:  # the feedback widget: an event carrying contexts.feedback
        feedback = as_dict(as_dict(event.get("contexts")).get("feedback"))
        name, email = feedback.get("name"), feedback.get("contact_email")
        message, url = feedback.get("message"), feedback.get("url")
        linked = feedback.get("associated_event_id")
    if not message:
        return None
    linked_id = text(linked).replace("-", "").lower()
    return {
        "event_id": linked_id if _EVENT_ID.fullmatch(linked_id) else None,  # else links nothing
        "timestamp": parse_timestamp(event.get("timestamp"), received),
        "name": text(name, 200),
        "contact_email": text(email, 200),
        "message": text(message),
        "url": text(url),
        "release": text(event.get("release"), 250),
        "environment": text(event.get("environment"), 64),
    }


def feedback_rows(frame: pl.DataFrame) -> pl.DataFrame:
    kinds = ("feedback", "user_report")
    rows = _build(frame, kinds, FEEDBACK_SCHEMA, _feedback_row,
                  ("payload", "received_at", "item_type"),
                  _copied("organization_id", "project_id", "received_at",
                          feedback_id=pl.col("event_id"), issue_id=pl.lit(0)))
    return corrected_times(rows, frame, kinds, "feedback_id")
