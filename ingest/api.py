"""The ingest endpoints: Sentry's envelope and store endpoints and the native batch endpoint.

Every request: read the body within limits, decompress, authenticate the DSN key, validate,
enrich (received time, client IP, User-Agent), then ONE Redis round trip that rate-limits and
enqueues (ingest.queue). Nothing is written to ClickHouse here: the landing worker does that.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import orjson
import redis
from flask import Blueprint, current_app, request
from werkzeug.http import HTTP_STATUS_CODES

from ingest import metrics
from ingest.attachments import (
    AttachmentFile,
    InvalidAttachment,
    attachment_file,
    store_attachments,
)
from ingest.auth import (
    AuthError,
    KeyInfo,
    KeysUnavailable,
    key_from_dsn,
    origin_allowed,
    parse_auth_header,
)
from ingest.decoding import BadEncoding, BodyTooLarge, decode_body
from ingest.envelope import EnvelopeError, EnvelopeItem, parse_envelope
from ingest.landing import LandingRow, encode_row
from ingest.queue import ACCEPTED
from ingest.schema import InvalidEvent, validate_event, validate_user_report
from ingest.state import IngestState

bp = Blueprint("ingest", __name__)
log = logging.getLogger("pulsetrace.ingest")

# Envelope items that become landing rows; attachments are stored (ingest.attachments) when
# the envelope names their event; the rest are accepted and counted.
LANDED_ITEM_TYPES = {"event", "transaction", "feedback", "user_report"}
COUNTED_ITEM_TYPES = {"session", "sessions", "client_report", "attachment", "statsd",
                      "check_in", "profile", "replay_event", "replay_recording", "span", "log"}
CORS_ALLOW_HEADERS = (
    "Content-Type, Content-Encoding, X-Sentry-Auth, Authentication, Authorization, "
    "sentry-trace, baggage"
)
CORS_EXPOSE_HEADERS = "X-Sentry-Rate-Limits, Retry-After, X-Sentry-Error"


@cache  # label values are a small fixed set; .labels() is a costly lookup
def labelled(metric: Any, label: str) -> Any:
    """A metric's child for one label value, looked up once per process."""
    return metric.labels(label)


class Request:
    """What the ingest handlers read of a request, straight from the WSGI environ.

    werkzeug's Request cost ~25 µs a request on the hot path (its stream, header and
    query-string wrappers), a sixth of the handler; SDKs send no query string but the key.
    """

    __slots__ = ("environ", "_args")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self._args: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def remote_addr(self) -> str | None:
        return self.environ.get("REMOTE_ADDR")

    @property
    def args(self) -> dict[str, str]:
        """The query string's parameters; of a repeated one, the first (as werkzeug's)."""
        if self._args is None:
            self._args = {}
            query = self.environ.get("QUERY_STRING")
            if query:
                for name, value in parse_qsl(query, keep_blank_values=True):
                    self._args.setdefault(name, value)
        return self._args

    @property
    def content_length(self) -> int | None:
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        return length if length >= 0 else None

    def read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body: Content-Length of them, or, for a chunked body
        the server has de-chunked, until its end."""
        length = self.content_length
        if length is None and not self.environ.get("wsgi.input_terminated"):
            return b""
        stream = self.environ["wsgi.input"]
        wanted = limit if length is None else min(length, limit)
        parts, got = [], 0
        while got < wanted:  # a read may return less than asked before the end
            part = stream.read(wanted - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def header(req: Request, name: str) -> str | None:
    """A request header. name: the CGI form, e.g. HTTP_USER_AGENT."""
    return req.environ.get(name)


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def state() -> IngestState:
    return current_app.extensions["pulsetrace_ingest"]


class Answer:
    """An ingest answer as a bare WSGI application. werkzeug's Response cost ~40 µs a request
    on the hot path, a tenth of it; Flask takes any WSGI application a view returns."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": "application/json", **(headers or {})} if body \
            else dict(headers or {})

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        start_response(f"{self.status} {HTTP_STATUS_CODES.get(self.status, 'Unknown')}",
                       [*self.headers.items(), ("Content-Length", str(len(self.body)))])
        return [self.body]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, orjson.dumps(body), headers)


# --- request pieces ------------------------------------------------------------------------


def read_body(req: Request, st: IngestState) -> bytes:
    limit = st.settings.ingest_max_body_bytes
    content_length = req.content_length
    if content_length is not None and content_length > limit:
        raise ApiError(413, f"the request body exceeds {limit} bytes", "too_large")
    # Reads a chunked body too, stopping one byte past the limit.
    raw = req.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, f"the request body exceeds {limit} bytes", "too_large")
    if content_length is not None and len(raw) < content_length:
        raise ApiError(
            400,
            f"the body is truncated: {len(raw)} of {content_length} bytes arrived",
            "truncated",
        )
    try:
        return decode_body(
            raw, header(req, "HTTP_CONTENT_ENCODING"), st.settings.ingest_max_decompressed_bytes
        )
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc), "too_large") from None
    except BadEncoding as exc:
        status = 415 if str(exc).startswith("unsupported") else 400
        raise ApiError(status, str(exc), "bad_encoding") from None


@dataclass(frozen=True)
class SentryAuth:
    """What the X-Sentry-Auth (or `Authorization: Sentry ...`) header carries."""

    key: str | None  # only from a header that starts with "Sentry "
    client: str  # sentry_client, from X-Sentry-Auth only


def sentry_auth(req: Request) -> SentryAuth:
    """Parses the auth header once per request (the key and the SDK both come from it)."""
    x_sentry_auth = header(req, "HTTP_X_SENTRY_AUTH")
    value = x_sentry_auth or header(req, "HTTP_AUTHORIZATION") or ""
    fields = parse_auth_header(value) if value else {}
    return SentryAuth(
        key=fields.get("sentry_key") if value.lower().startswith("sentry ") else None,
        client=fields.get("sentry_client", "") if x_sentry_auth else "",
    )


def public_key_from_request(
    req: Request, auth: SentryAuth, envelope_headers: dict[str, Any] | None = None
) -> object:
    if auth.key:
        return auth.key
    key = req.args.get("sentry_key")
    if key:
        return key
    if envelope_headers:
        try:
            key = key_from_dsn(envelope_headers.get("dsn"))
        except ValueError as exc:  # e.g. an unclosed [ in the host
            raise ApiError(401, f"the envelope header's dsn is not a valid DSN: {exc}",
                           "auth") from None
        trace = envelope_headers.get("trace")
        # Any type may arrive here: KeyCache.authenticate refuses what is not a key string.
        return key or (trace.get("public_key") if isinstance(trace, dict) else None)
    return None


def sdk_from_request(req: Request, auth: SentryAuth) -> tuple[str, str]:
    client = req.args.get("sentry_client") or auth.client
    name, _, version = client.partition("/")
    return name, version


def authenticate(req: Request, st: IngestState, project_id: int, public_key: object) -> KeyInfo:
    try:
        info = st.keys.authenticate(public_key, project_id)
    except AuthError as exc:
        raise ApiError(exc.status, exc.message, "auth") from None
    except KeysUnavailable:  # PostgreSQL down or restarting: the SDK sends it again later
        raise ApiError(
            503, "the DSN key cannot be checked right now; retry later", "keys_unavailable",
            {"Retry-After": "5"},
        ) from None
    if not origin_allowed(info, header(req, "HTTP_ORIGIN")):
        raise ApiError(403, "this origin is not allowed for the project", "origin")
    return info


_HEX_ID = re.compile(r"[0-9a-f]{32}")


def normalize_event_id(value: object) -> str:
    if value is None:
        return uuid.uuid4().hex
    if isinstance(value, str):
        if len(value) == 32 and _HEX_ID.fullmatch(value):  # what SDKs send: already normal
            return value
        try:
            return uuid.UUID(value).hex
        except ValueError:
            pass
    raise ApiError(400, f"event_id {value!r} is not a UUID (32 hex characters)", "invalid")


@dataclass
class Accepted:
    """Rows ready to enqueue, keyed by the id used to drop SDK retries."""

    dedupe_ids: list[str]
    event_ids: list[str]
    rows: list[bytes]
    item_types: list[str]
    # What takes a place in the rate limit without a row: the files of an envelope that
    # carries no event (its event was sent before, or never), so that they cannot pass it.
    counted_ids: list[str] = field(default_factory=list)


# Relay's rule: a clock this far off is corrected (a wrong time zone, a clock never set); less
# is taken as the time the envelope spent on the way, or queued in the SDK. A `sent_at` more
# than a century off says nothing about the device's clock (and would move its event's times
# out of every calendar): it is not used.
MIN_CLOCK_DRIFT_SECONDS = 55 * 60
MAX_CLOCK_DRIFT_SECONDS = 100 * 365 * 86_400


def clock_drift_ms(sent_at: object, received_at: float) -> int:
    """How far the SDK's clock is behind the server's (negative: ahead), from an envelope's
    `sent_at` (RFC 3339, by the SDK's clock), when that is MIN_CLOCK_DRIFT_SECONDS or more;
    else 0. An unreadable `sent_at` is no reason to refuse the envelope: 0."""
    if not isinstance(sent_at, str):
        return 0
    try:
        sent = datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
        drift = received_at - (sent if sent.tzinfo else sent.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError, OSError):
        return 0
    if MIN_CLOCK_DRIFT_SECONDS <= abs(drift) <= MAX_CLOCK_DRIFT_SECONDS:
        return round(drift * 1000)
    return 0


class RowBuilder:
    """Builds landing rows with what the server learned about this request."""

    def __init__(self, req: Request, st: IngestState, info: KeyInfo, auth: SentryAuth,
                 sent_at: object = None) -> None:
        self.info = info
        self.received_at = time.time()
        self.clock_drift_ms = clock_drift_ms(sent_at, self.received_at)
        self.client_ip = st.client_ip(req.remote_addr, header(req, "HTTP_X_FORWARDED_FOR"))
        self.user_agent = (header(req, "HTTP_USER_AGENT") or "")[:1024]
        self.ua = st.parse_user_agent(self.user_agent)
        self.sdk_name, self.sdk_version = sdk_from_request(req, auth)
        self.accepted = Accepted([], [], [], [])

    def add(self, item_type: str, event_id: str, payload: bytes, sdk: Any = None) -> None:
        sdk_name, sdk_version = self.sdk_name, self.sdk_version
        if sdk is not None and sdk.name:
            sdk_name, sdk_version = sdk.name, sdk.version or ""
        row = LandingRow(
            organization_id=self.info.organization_id,
            project_id=self.info.project_id,
            event_id=event_id,
            item_type=item_type,
            received_at=self.received_at,
            client_ip=self.client_ip,
            user_agent=self.user_agent,
            ua_browser=self.ua[0],
            ua_browser_version=self.ua[1],
            ua_os=self.ua[2],
            ua_os_version=self.ua[3],
            ua_device=self.ua[4],
            sdk_name=sdk_name,
            sdk_version=sdk_version,
            payload=payload,
            clock_drift_ms=self.clock_drift_ms,
        )
        self.accepted.dedupe_ids.append(f"{item_type}:{event_id}")
        self.accepted.event_ids.append(event_id)
        self.accepted.rows.append(encode_row(row))
        self.accepted.item_types.append(item_type)


@dataclass(frozen=True)
class Enqueued:
    statuses: list[int]  # per row, in order; shorter than the rows when the limit refused some
    limit_headers: dict[str, str] | None  # tells Sentry SDKs to back off


def enqueue(st: IngestState, builder: RowBuilder) -> Enqueued:
    """Rate-limit and enqueue the builder's rows in one Redis round trip."""
    accepted = builder.accepted
    if not accepted.rows and not accepted.counted_ids:
        return Enqueued([], None)
    per_minute = builder.info.rate_limit_per_minute or st.settings.ingest_rate_limit_per_minute
    try:
        result = st.queue.enqueue(
            builder.info.key_id,
            builder.info.project_id,
            per_minute,
            list(zip(accepted.dedupe_ids, accepted.rows, strict=True)),
            accepted.counted_ids,
        )
    except redis.RedisError:
        labelled(metrics.EVENTS_REJECTED, "queue_unavailable").inc(len(accepted.rows))
        raise ApiError(
            503, "the event queue is unavailable; retry later", "queue_unavailable",
            {"Retry-After": "5"},
        ) from None
    counts: dict[str, int] = {}
    for status, item_type in zip(result.statuses, accepted.item_types, strict=False):
        if status == ACCEPTED:
            counts[item_type] = counts.get(item_type, 0) + 1
    for item_type, count in counts.items():  # one increment per item type, not per event
        labelled(metrics.EVENTS_ACCEPTED, item_type).inc(count)
    if not result.rate_limited:
        return Enqueued(result.statuses, None)
    metrics.EVENTS_RATE_LIMITED.inc(result.rate_limited)
    retry = str(result.retry_after_seconds)
    return Enqueued(
        result.statuses, {"Retry-After": retry, "X-Sentry-Rate-Limits": f"{retry}::key:key_quota"}
    )


# --- CORS ----------------------------------------------------------------------------------


def with_cors(req: Request, response: Answer) -> Answer:
    origin = header(req, "HTTP_ORIGIN")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        response.headers["Vary"] = "Origin"
    return response


def preflight(req: Request, st: IngestState, project_id: int) -> Answer:
    key = req.args.get("sentry_key")
    if key:
        try:
            authenticate(req, st, project_id, key)
        except ApiError as exc:  # with CORS headers, so the page can read why
            return with_cors(req, json_response(exc.status, {"detail": exc.message}))
    response = Answer(200, headers={
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Max-Age": "3600",
    })
    return with_cors(req, response)


def guarded(endpoint: str, req: Request, st: IngestState, project_id: int) -> Answer:
    """Runs an endpoint's handler, turning ApiError into its answer, timing it, and adding
    CORS headers. Called by the Flask routes below and by ingest's WSGI fast path."""
    started = time.perf_counter()
    if req.method == "OPTIONS":
        return preflight(req, st, project_id)
    try:
        response = HANDLERS[endpoint](req, st, project_id)
    except ApiError as exc:
        labelled(metrics.EVENTS_REJECTED, exc.reason).inc()
        headers = {"X-Sentry-Error": exc.message[:200], **exc.headers}
        response = json_response(exc.status, {"detail": exc.message}, headers)
    labelled(metrics.REQUEST_LATENCY, endpoint).observe(time.perf_counter() - started)
    return with_cors(req, response)


# --- endpoints -----------------------------------------------------------------------------


def event_too_large(size: int, limit: int) -> str | None:
    """Why an event of `size` bytes is refused, or None."""
    if size <= limit:
        return None
    return f"the event is {size} bytes; at most {limit} bytes per event"


def _landed_item(builder: RowBuilder, item: EnvelopeItem, number: int, header_id: Any,
                 max_event_bytes: int) -> None:
    too_large = event_too_large(len(item.payload), max_event_bytes)
    if too_large:
        raise ApiError(413, f"item {number} ({item.type}): {too_large}", "too_large")
    try:
        if item.type == "user_report":
            report = validate_user_report(item.payload)
            builder.add("user_report", normalize_event_id(report.event_id), item.payload)
            return
        event = validate_event(item.payload)
    except InvalidEvent as exc:
        raise ApiError(400, f"item {number} ({item.type}): {exc}", "invalid") from None
    event_id = normalize_event_id(event.event_id or header_id)
    builder.add(item.type, event_id, item.payload, event.sdk)


def handle_envelope(req: Request, st: IngestState, project_id: int) -> Answer:
    body = read_body(req, st)
    try:
        envelope = parse_envelope(body)
    except EnvelopeError as exc:
        raise ApiError(400, f"invalid envelope: {exc}", "invalid") from None
    auth = sentry_auth(req)
    info = authenticate(req, st, project_id, public_key_from_request(req, auth, envelope.headers))
    builder = RowBuilder(req, st, info, auth, envelope.headers.get("sent_at"))
    header_id = envelope.headers.get("event_id")
    # Checked before anything is queued: an event queued and then answered 400 would be
    # sent again by a retrying client.
    if header_id:
        header_id = normalize_event_id(header_id)
    files: list[AttachmentFile] = []
    for number, item in enumerate(envelope.items, start=1):
        if item.type in LANDED_ITEM_TYPES:
            _landed_item(builder, item, number, header_id, st.settings.ingest_max_event_bytes)
        elif item.type == "attachment" and header_id:
            try:
                files.append(attachment_file(item))
            except InvalidAttachment as exc:
                raise ApiError(400, f"item {number} (attachment): {exc}", "invalid") from None
        else:
            labelled(
                metrics.ITEMS_COUNTED, item.type if item.type in COUNTED_ITEM_TYPES else "other"
            ).inc()
    if files and not builder.accepted.rows:
        builder.accepted.counted_ids.append(f"attachments:{header_id}")
    queued = enqueue(st, builder)
    if queued.limit_headers and not queued.statuses:
        return json_response(429, {"detail": "rate limited"}, queued.limit_headers)
    if files:
        _store_files(st, builder.info, header_id, files)
    first = builder.accepted.event_ids[0] if builder.accepted.event_ids else None
    answer_id = header_id or first
    # Like Sentry: the event's id, or an empty object for envelopes without one (sessions).
    body = {"id": answer_id} if answer_id else {}
    return json_response(200, body, queued.limit_headers)


def _store_files(st: IngestState, info: KeyInfo, event_id: str,
                 files: list[AttachmentFile]) -> None:
    """After the event is queued: an attachment of an event the limit refused is not kept,
    nor the files of an envelope without an event when the limit refused them (they count as
    one event). Not stored, the envelope is answered 503; sent again, its event is dropped as
    seen and its files are stored (once: see ingest.attachments)."""
    try:
        store_attachments(st.engine, st.blobs, info.organization_id, info.project_id,
                          event_id, files)
    except Exception as exc:
        log.warning("attachments of event %s not stored: %r", event_id, exc)
        labelled(metrics.EVENTS_REJECTED, "attachments_unavailable").inc(len(files))
        raise ApiError(503, "the attachments could not be stored; retry later",
                       "attachments_unavailable", {"Retry-After": "5"}) from None
    metrics.ATTACHMENTS_STORED.inc(len(files))


def _legacy_store_body(body: bytes, limit: int) -> bytes:
    """Old SDKs post base64 of zlib-compressed JSON to /store/; inflated under the same cap
    as any compressed body."""
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"["):
        return body
    try:
        return decode_body(base64.b64decode(stripped, validate=True), "deflate", limit)
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc), "too_large") from None
    except (binascii.Error, BadEncoding):
        raise ApiError(400, "the body is not JSON (nor base64 of zlib-compressed JSON)",
                       "invalid") from None


def handle_store(req: Request, st: IngestState, project_id: int) -> Answer:
    body = read_body(req, st)
    auth = sentry_auth(req)
    info = authenticate(req, st, project_id, public_key_from_request(req, auth))
    body = _legacy_store_body(body, st.settings.ingest_max_decompressed_bytes)
    too_large = event_too_large(len(body), st.settings.ingest_max_event_bytes)
    if too_large:
        raise ApiError(413, too_large, "too_large")
    try:
        event = validate_event(body)
    except InvalidEvent as exc:
        raise ApiError(400, str(exc), "invalid") from None
    item_type = "transaction" if event.type == "transaction" else "event"
    builder = RowBuilder(req, st, info, auth)
    event_id = normalize_event_id(event.event_id)
    builder.add(item_type, event_id, body, event.sdk)
    queued = enqueue(st, builder)
    if not queued.statuses:
        return json_response(429, {"detail": "rate limited"}, queued.limit_headers)
    return json_response(200, {"id": event_id})


_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def handle_batch(req: Request, st: IngestState, project_id: int) -> Answer:
    """PulseTrace's native batch: a JSON array of events, answered per event."""
    body = read_body(req, st)
    auth = sentry_auth(req)
    info = authenticate(req, st, project_id, public_key_from_request(req, auth))
    try:
        raw_events = _batch_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ApiError(400, f"the body must be a JSON array of events: {exc}", "invalid") from None
    if not raw_events:
        raise ApiError(400, "the batch is empty: send at least one event", "empty")
    limit = st.settings.ingest_max_batch_events
    if len(raw_events) > limit:
        raise ApiError(
            413, f"the batch has {len(raw_events)} events; at most {limit} per request",
            "too_large",
        )
    builder = RowBuilder(req, st, info, auth)
    rejected: list[dict[str, Any]] = []
    positions: list[int] = []  # index in the batch of each row handed to the queue
    max_event_bytes = st.settings.ingest_max_event_bytes
    too_large_count = 0
    for index, raw in enumerate(raw_events):
        payload = bytes(raw)
        too_large = event_too_large(len(payload), max_event_bytes)
        if too_large:
            rejected.append({"index": index, "reason": too_large})
            too_large_count += 1
            continue
        try:
            event = validate_event(payload)
            event_id = normalize_event_id(event.event_id)
        except InvalidEvent as exc:
            rejected.append({"index": index, "reason": str(exc)})
            continue
        except ApiError as exc:
            rejected.append({"index": index, "reason": exc.message})
            continue
        item_type = "transaction" if event.type == "transaction" else "event"
        builder.add(item_type, event_id, payload, event.sdk)
        positions.append(index)
    if too_large_count:
        labelled(metrics.EVENTS_REJECTED, "too_large").inc(too_large_count)
    if len(rejected) > too_large_count:
        labelled(metrics.EVENTS_REJECTED, "invalid").inc(len(rejected) - too_large_count)
    queued = enqueue(st, builder)
    accepted = []
    for i, (position, event_id) in enumerate(zip(positions, builder.accepted.event_ids,
                                                 strict=True)):
        if i < len(queued.statuses):  # ACCEPTED, or DUPLICATE: an earlier copy was accepted
            accepted.append(event_id)
        else:
            rejected.append({"index": position, "id": event_id, "reason": "rate_limited"})
    rejected.sort(key=lambda r: r["index"])
    if accepted:
        status_code = 200
    elif queued.limit_headers:
        status_code = 429
    else:  # nothing taken: 413 if only for size
        status_code = 413 if too_large_count == len(rejected) else 400
    return json_response(
        status_code, {"accepted": accepted, "rejected": rejected}, queued.limit_headers
    )


HANDLERS = {"envelope": handle_envelope, "store": handle_store, "events": handle_batch}


# POSTs to these routes normally take ingest's WSGI fast path (ingest/__init__.py), which
# calls guarded() without Flask; the routes serve OPTIONS and anything the fast path declines.
@bp.route("/api/<int:project_id>/envelope/", methods=["POST", "OPTIONS"])
def envelope(project_id: int) -> Answer:
    return guarded("envelope", Request(request.environ), state(), project_id)


@bp.route("/api/<int:project_id>/store/", methods=["POST", "OPTIONS"])
def store(project_id: int) -> Answer:
    return guarded("store", Request(request.environ), state(), project_id)


@bp.route("/api/<int:project_id>/events/", methods=["POST", "OPTIONS"])
def events(project_id: int) -> Answer:
    return guarded("events", Request(request.environ), state(), project_id)
