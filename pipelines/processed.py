"""Rows for the processed ClickHouse tables (`events`, `transactions`, `feedback`), built from
scrubbed, symbolicated and fingerprinted events.

Each builder reads the event JSON once per row and returns a frame whose columns are exactly
the table's, so orchestration inserts it as it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from core.levels import SENTRY_LEVEL

log = logging.getLogger(__name__)

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
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return fallback


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


def _build(
    frame: pl.DataFrame,
    item_types: tuple[str, ...],
    schema: dict[str, pl.DataType | type[pl.DataType]],
    make: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None],
    reads: tuple[str, ...],
    copied: dict[str, pl.Expr],
) -> pl.DataFrame:
    """Rows of `schema`: `copied` columns (expressions over the frame) are taken over by
    Polars as they are, the others are what `make(row, event)` returns from the event's JSON
    and the frame columns in `reads` (those the frame has). Passing the ids, timestamps and
    the payload through Python and back cost about a sixth of the stage."""
    selected = frame.filter(pl.col("item_type").is_in(item_types))
    computed = [name for name in schema if name not in copied]
    in_computed_order = itemgetter(*computed)
    kept: list[int] = []
    built_rows: list[tuple[Any, ...]] = []
    present = [name for name in reads if name in selected.columns]
    for index, row in enumerate(selected.select(present).iter_rows(named=True)):
        try:
            event = orjson.loads(row["payload"])
        except orjson.JSONDecodeError:
            continue  # ingest validated it; a broken row is skipped, not fatal
        if isinstance(event, dict):
            try:
                built = make(row, event)
            except Exception:
                # A shape ingest validation would have refused (a row landed some other way):
                # that row is skipped, the batch of everyone's events goes on.
                log.exception("no processed row for an event of an unforeseen shape")
                continue
            if built is not None:
                kept.append(index)
                built_rows.append(in_computed_order(built))
    # Rows transposed to columns in one C pass (appending value by value cost a third of the
    # stage), then through Arrow: it converts the list columns at once, Polars one by one.
    columns = list(zip(*built_rows, strict=True)) if built_rows else [() for _ in computed]
    arrow_schema = pl.DataFrame(schema={name: schema[name] for name in computed}).to_arrow().schema
    table = pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, arrow_schema,
                                                                   strict=True)],
        schema=arrow_schema,
    )
    built_frame = pl.from_arrow(table)
    assert isinstance(built_frame, pl.DataFrame)
    if len(kept) < selected.height:
        selected = selected[kept]
    taken = selected.select(expr.cast(schema[name]).alias(name) for name, expr in copied.items())
    return pl.concat([taken, built_frame], how="horizontal").select(list(schema))


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


def event_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """`events` rows for the error/message events of a fingerprinted frame."""
    return _build(frame, ("event",), EVENT_SCHEMA, _event_row, _EVENT_READS, _EVENT_COPIED)


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


def transaction_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return _build(frame, ("transaction",), TRANSACTION_SCHEMA, _transaction_row,
                  _TRANSACTION_READS, _copied("organization_id", "project_id", "event_id",
                                              "received_at"))


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
    return _build(frame, ("feedback", "user_report"), FEEDBACK_SCHEMA, _feedback_row,
                  ("payload", "received_at", "item_type"),
                  _copied("organization_id", "project_id", "received_at",
                          feedback_id=pl.col("event_id"), issue_id=pl.lit(0)))
