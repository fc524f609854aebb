"""Pure pieces of the ingest: envelope parsing, decoding limits, client IP behind proxies."""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime

import msgspec
import pytest
from clickhouse_connect.datatypes.registry import get_from_name

from core.settings import Settings
from ingest.api import clock_drift_ms
from ingest.decoding import BadEncoding, BodyTooLarge, decode_body
from ingest.envelope import EnvelopeError, parse_envelope
from ingest.landing import COLUMNS, LandingRow, _columns
from ingest.state import parse_user_agent, resolve_client_ip, trusted_networks


def test_envelope_items_with_and_without_length() -> None:
    binary = b"a\n\nb\x00"
    body = (b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
            b'{"type":"attachment","length":5}\n' + binary + b"\n"
            b'{"type":"event"}\n{"message":"no length"}\n'
            b"\n"
            b'{"type":"session"}\n{"sid":"x"}')  # no trailing newline
    envelope = parse_envelope(body)
    assert envelope.headers["event_id"] == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert [(i.type, i.payload) for i in envelope.items] == [
        ("attachment", binary), ("event", b'{"message":"no length"}'), ("session", b'{"sid":"x"}'),
    ]


@pytest.mark.parametrize(("body", "text"), [
    (b'{}\n{"type":"event","length":-1}\n', "invalid length"),
    (b'{}\n{"type":"event","length":true}\n{}', "invalid length"),
    (b"[]\n", "must be a JSON object"),
])
def test_envelope_errors_say_what_is_wrong(body: bytes, text: str) -> None:
    with pytest.raises(EnvelopeError, match=text):
        parse_envelope(body)


def test_envelope_item_count_is_bounded() -> None:
    body = b"{}\n" + b'{"type":"session"}\n{}\n' * 1001
    with pytest.raises(EnvelopeError, match="more than 1000 items"):
        parse_envelope(body)


def test_decoding_limits_apply_to_the_decompressed_size() -> None:
    data = gzip.compress(b"x" * 5000)
    assert decode_body(data, "gzip", 5000) == b"x" * 5000
    with pytest.raises(BodyTooLarge):
        decode_body(data, "gzip", 4999)
    with pytest.raises(BodyTooLarge):
        decode_body(b"x" * 10, None, 9)
    with pytest.raises(BadEncoding, match="truncated"):
        decode_body(data[:-8], "gzip", 10_000)


def test_every_gzip_member_is_decoded_under_one_cap() -> None:
    a, b = gzip.compress(b"a" * 3000), gzip.compress(b"b" * 3000)
    assert decode_body(a + b, "gzip", 6000) == b"a" * 3000 + b"b" * 3000  # `cat a.gz b.gz`
    assert decode_body(a + gzip.compress(b"") + b, "x-gzip", 6000) == b"a" * 3000 + b"b" * 3000
    with pytest.raises(BodyTooLarge):  # the cap counts all members, not each
        decode_body(a + b, "gzip", 5999)
    with pytest.raises(BadEncoding, match="truncated"):
        decode_body(a + b[:-8], "gzip", 10_000)
    # Many members: each member's end must not copy the rest of the body (quadratic).
    many = gzip.compress(b"x") * 5000
    assert decode_body(many, "gzip", 10_000) == b"x" * 5000
    with pytest.raises(BadEncoding, match="more than 10000 members"):
        decode_body(gzip.compress(b"") * 10_001, "gzip", 10_000)


@pytest.mark.parametrize(("data", "encoding", "text"), [
    (gzip.compress(b"a") + b"garbage", "gzip", "7 bytes after the end of its data that are not"
                                                 " another gzip member"),
    (gzip.compress(b"a") + b"\x1f", "gzip", "1 bytes after the end"),
    (zlib.compress(b"a") + b"xy", "deflate", "the deflate body has 2 bytes after the end"),
    (zlib.compress(b"a")[2:-4] + b"xy", "deflate", "2 bytes after the end"),
], ids=["gzip", "gzip-short", "zlib-deflate", "raw-deflate"])
def test_bytes_after_the_compressed_data_are_an_error(
    data: bytes, encoding: str, text: str
) -> None:
    with pytest.raises(BadEncoding, match=text):
        decode_body(data, encoding, 10_000)


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    trusted = trusted_networks(Settings.from_env("/tmp/unused").ingest_trusted_proxies)
    # Not behind a trusted proxy: the header is the client's own claim, ignored.
    assert resolve_client_ip("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    # Behind trusted proxies: the last hop that is not one of them.
    hops = "1.2.3.4, 198.51.100.7, 192.168.1.1"
    assert resolve_client_ip("10.1.2.3", hops, trusted) == "198.51.100.7"
    assert resolve_client_ip("10.1.2.3", None, trusted) == "10.1.2.3"


def test_user_agent_is_parsed_into_browser_os_and_device() -> None:
    ua = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
    assert parse_user_agent(ua) == ("Mobile Safari", "17.5", "iOS", "17.5", "iPhone")
    assert parse_user_agent("") == ("", "", "", "", "")


def test_landing_columns_keep_what_the_rows_said() -> None:
    """The insert's received_at is the millisecond the datetime path gave, and a payload
    with invalid UTF-8 (ingest's validation skips unknown fields unchecked) lands with
    replacement characters, not as bytes that readers of raw_events cannot decode."""
    row = LandingRow(1, 2, "9ec79c33ec9942ab8353589fcb2e04dc", "event", 0.0, "127.0.0.1", "ua",
                     "", "", "", "", "", "sentry.python", "2.0", b"")
    moments = [1700000000.0005, 1700000000.9999996, 1.0009995, 1764234567.123456]
    ticks = get_from_name("DateTime64(3, 'UTC')")._datetime64_ticks
    payloads = [b'{"a":"plain"}', '{"a":"caf\u00e9"}'.encode(), b'{"a":"\xff\xfe"}']
    rows = [msgspec.structs.replace(row, received_at=t, payload=p)
            for t, p in zip(moments, payloads + [b"{}"], strict=True)]
    columns = _columns(rows)
    assert columns[COLUMNS.index("received_at")] == [
        ticks(datetime.fromtimestamp(t, UTC)) for t in moments
    ]
    assert columns[COLUMNS.index("payload")] == [
        b'{"a":"plain"}', '{"a":"caf\u00e9"}'.encode(), '{"a":"\ufffd\ufffd"}'.encode(), b"{}",
    ]


RECEIVED_AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("sent_at", "drift_ms"), [
    ("2026-11-28T09:00:00.000000Z", 3 * 3_600_000),  # a clock 3 hours behind
    ("2026-11-28T15:30:00+00:00", -int(3.5 * 3_600_000)),  # ahead
    ("2026-11-28T11:05:00Z", 55 * 60_000),  # just what Relay corrects
    ("2026-11-28T11:05:01Z", 0),  # less: taken as time on the way
    ("2026-11-28T09:00:00", 3 * 3_600_000),  # no offset: UTC
    ("2000-01-01T00:00:00Z", 849_182_400_000),  # a clock reset by a flat battery
    ("1900-01-01T00:00:00Z", 0), ("9999-12-31T23:59:59Z", 0),  # a century off: unused
    ("yesterday", 0), ("", 0), (None, 0), (1764320000, 0), ("2026-13-01T00:00:00Z", 0),
])
def test_the_clock_drift_of_an_envelope_is_measured_from_its_sent_at(sent_at: object,
                                                                      drift_ms: int) -> None:
    assert clock_drift_ms(sent_at, RECEIVED_AT) == drift_ms


def test_landing_rows_queued_before_the_clock_drift_decode_with_none() -> None:
    """Rows already in the stream when ingest is upgraded have one field fewer."""
    old = msgspec.msgpack.encode([1, 2, "9ec79c33ec9942ab8353589fcb2e04dc", "event", 1.5, "",
                                  "", "", "", "", "", "", "", "", b"{}"])
    assert msgspec.msgpack.decode(old, type=LandingRow).clock_drift_ms == 0
