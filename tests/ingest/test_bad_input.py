"""Every kind of bad input gets the right status and a readable message, never a 5xx."""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import brotli
import psutil
import pytest
import requests

from cli.bootstrap import BootstrapResult
from core.embedded.process import ManagedProcess
from tests.stack import IngestStack


def envelope(*events: dict[str, object], header: dict[str, object] | None = None) -> bytes:
    lines = [json.dumps(header or {}).encode()]
    for event in events:
        payload = json.dumps(event).encode()
        lines.append(json.dumps({"type": "event", "length": len(payload)}).encode())
        lines.append(payload)
    return b"\n".join(lines) + b"\n"


def an_event(**fields: object) -> dict[str, object]:
    return {"event_id": uuid.uuid4().hex, "message": "hello", "level": "error", **fields}


def post(stack: IngestStack, kind: str, body: bytes, headers: dict[str, str] | None = None,
         project_id: int | None = None, key: str | None = None) -> requests.Response:
    all_headers = {**stack.auth(key), **(headers or {})}
    return requests.post(stack.endpoint(kind, project_id), data=body, headers=all_headers,
                         timeout=30)


def assert_error(response: requests.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert text in detail, detail


def test_missing_key_is_401(ingest_stack: IngestStack) -> None:
    response = requests.post(ingest_stack.endpoint("envelope"), data=envelope(an_event()),
                             timeout=10)
    assert_error(response, 401, "missing DSN key")


@pytest.mark.parametrize(("key", "text"), [
    ("0" * 32, "unknown DSN key"),
    ("not-a-key", "expected 32 hexadecimal characters"),
])
def test_bad_key_is_403(ingest_stack: IngestStack, key: str, text: str) -> None:
    assert_error(post(ingest_stack, "envelope", envelope(an_event()), key=key), 403, text)


def test_key_of_another_project_is_403(
    ingest_stack: IngestStack, fresh_project: BootstrapResult
) -> None:
    response = post(ingest_stack, "envelope", envelope(an_event()), key=fresh_project.public_key)
    assert_error(response, 403, f"does not belong to project {ingest_stack.project.project_id}")


def test_revoked_key_stops_working_within_seconds(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, set_key: Callable[..., None]
) -> None:
    pid = fresh_project.project_id
    ok = post(ingest_stack, "envelope", envelope(an_event()), project_id=pid,
              key=fresh_project.public_key)
    assert ok.status_code == 200
    set_key(fresh_project.public_key, is_active=False)
    deadline = time.monotonic() + 10  # the key cache holds entries for 1 s in tests
    while time.monotonic() < deadline:
        response = post(ingest_stack, "envelope", envelope(an_event()), project_id=pid,
                        key=fresh_project.public_key)
        if response.status_code != 200:
            break
        time.sleep(0.2)
    assert_error(response, 403, "revoked")


def test_key_in_query_string_or_envelope_header_works(ingest_stack: IngestStack) -> None:
    key = ingest_stack.project.public_key
    by_query = requests.post(f"{ingest_stack.endpoint('envelope')}?sentry_key={key}",
                             data=envelope(an_event()), timeout=10,
                             headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert by_query.status_code == 200, by_query.text
    by_header = requests.post(ingest_stack.endpoint("envelope"),
                              data=envelope(an_event(), header={"dsn": ingest_stack.project.dsn}),
                              timeout=10)
    assert by_header.status_code == 200, by_header.text


@pytest.mark.parametrize(("header", "status", "text"), [
    ({"dsn": "https://abc@[bad/1"}, 401, "the envelope header's dsn is not a valid DSN"),
    ({"trace": {"public_key": 123}}, 403, "invalid DSN key"),
    ({"trace": {"public_key": ["f" * 32]}}, 403, "invalid DSN key"),
])
def test_unreadable_key_in_envelope_header_is_401_or_403(
    ingest_stack: IngestStack, header: dict[str, object], status: int, text: str
) -> None:
    response = requests.post(ingest_stack.endpoint("envelope"),
                             data=envelope(an_event(), header=header), timeout=10)
    assert_error(response, status, text)


def test_invalid_envelope_event_id_is_400_and_nothing_is_queued(
    ingest_stack: IngestStack,
) -> None:
    # The item carries a valid id of its own; the header's id is still checked first.
    refused = an_event()
    response = post(ingest_stack, "envelope", envelope(refused, header={"event_id": "xyz"}))
    assert_error(response, 400, "event_id 'xyz' is not a UUID")
    # The stream lands in order: once a later event is in, the refused one would be too.
    later = an_event()
    assert post(ingest_stack, "envelope", envelope(later)).status_code == 200
    ingest_stack.landed("event_id = {id:UUID}", {"id": later["event_id"]}, expected=1)
    assert ingest_stack.warehouse.command(
        "SELECT count() FROM raw_events WHERE event_id = {id:UUID}",
        parameters={"id": refused["event_id"]},
    ) == 0


@pytest.mark.parametrize(("body", "text"), [
    (b"{not json\n", "the envelope header is not valid JSON"),
    (b'{}\n{"length": 2}\n{}\n', "item 1 has no type"),
    (b'{}\n{"type":"event","length":2}\n{"message": oops}\n', "is not valid JSON"),
    (b"", "the envelope is empty"),
])
def test_malformed_envelopes_are_400(ingest_stack: IngestStack, body: bytes, text: str) -> None:
    assert_error(post(ingest_stack, "envelope", body), 400, text)


def test_truncated_item_is_400(ingest_stack: IngestStack) -> None:
    body = b'{}\n{"type":"event","length":500}\n{"message":"short"}\n'
    assert_error(post(ingest_stack, "envelope", body), 400, "item 1 is truncated")


def test_truncated_body_is_400(ingest_stack: IngestStack) -> None:
    whole = gzip.compress(envelope(an_event()))
    cut = whole[: len(whole) // 2]
    response = post(ingest_stack, "envelope", cut, {"Content-Encoding": "gzip"})
    assert_error(response, 400, "truncated")


@pytest.mark.parametrize(("event", "path"), [
    (an_event(level="catastrophic"), "`event.level`"),
    (an_event(exception={"values": [{"type": 5}]}), "`event.exception.values[0].type`"),
    (an_event(tags="nope"), "`event.tags`"),
    (an_event(breadcrumbs={"values": [{"timestamp": [1]}]}),
     "`event.breadcrumbs.values[0].timestamp`"),
])
def test_invalid_event_names_the_field(
    ingest_stack: IngestStack, event: dict[str, object], path: str
) -> None:
    response = post(ingest_stack, "envelope", envelope(event))
    assert_error(response, 400, path)
    store = post(ingest_stack, "store", json.dumps(event).encode())
    assert_error(store, 400, path)


def test_invalid_utf8_in_a_field_is_400_on_every_endpoint(ingest_stack: IngestStack) -> None:
    """A byte that is not UTF-8 in a string the schema reads (it was a 500)."""
    event = json.dumps(an_event(message="@@")).encode().replace(b"@@", b"caf\xe9")
    for kind, body in (("store", event), ("envelope", b"{}\n" + b'{"type":"event"}\n' + event)):
        assert_error(post(ingest_stack, kind, body), 400, "not valid UTF-8")
    good = an_event()
    batch = post(ingest_stack, "events", b"[" + event + b"," + json.dumps(good).encode() + b"]")
    assert batch.status_code == 200, batch.text
    assert batch.json()["accepted"] == [good["event_id"]]
    assert "not valid UTF-8" in batch.json()["rejected"][0]["reason"]
    report = b'{"event_id":"' + uuid.uuid4().hex.encode() + b'","comments":"caf\xe9"}'
    assert_error(post(ingest_stack, "envelope", b'{}\n{"type":"user_report"}\n' + report),
                 400, "not valid UTF-8")


def test_invalid_event_id_is_400(ingest_stack: IngestStack) -> None:
    response = post(ingest_stack, "store", json.dumps(an_event(event_id="xyz")).encode())
    assert_error(response, 400, "is not a UUID")


def test_unknown_fields_are_kept(ingest_stack: IngestStack) -> None:
    event = an_event(my_custom_field={"nested": [1, 2, 3]})
    response = post(ingest_stack, "store", json.dumps(event).encode())
    assert response.status_code == 200
    rows = ingest_stack.landed("event_id = {id:UUID}", {"id": event["event_id"]}, expected=1)
    payload = json.loads(rows[0][ingest_stack.columns().index("payload")])
    assert payload["my_custom_field"] == {"nested": [1, 2, 3]}


def test_oversized_body_is_413(ingest_stack: IngestStack) -> None:
    limit = ingest_stack.settings.ingest_max_body_bytes
    response = post(ingest_stack, "store", b"{" + b" " * limit + b"}")
    assert_error(response, 413, f"exceeds {limit} bytes")


def test_oversized_event_is_refused_and_named(ingest_stack: IngestStack) -> None:
    limit = ingest_stack.settings.ingest_max_event_bytes
    big, small = an_event(message="x" * limit), an_event()
    response = post(ingest_stack, "envelope", envelope(small, big))
    assert_error(response, 413, f"item 2 (event): the event is {len(json.dumps(big))} bytes; "
                                f"at most {limit} bytes per event")
    assert_error(post(ingest_stack, "store", json.dumps(big).encode()), 413,
                 f"at most {limit} bytes per event")
    batch = post(ingest_stack, "events", json.dumps([small, big]).encode())
    assert batch.status_code == 200, batch.text
    assert batch.json()["accepted"] == [small["event_id"]]
    [refused] = batch.json()["rejected"]
    assert refused["index"] == 1 and f"at most {limit} bytes per event" in refused["reason"]
    only_big = post(ingest_stack, "events", json.dumps([big]).encode())
    assert only_big.status_code == 413, only_big.text
    # Just under the limit is fine.
    fits = an_event(message="")
    fits["message"] = "y" * (limit - len(json.dumps(fits)))
    assert post(ingest_stack, "store", json.dumps(fits).encode()).status_code == 200


def test_chunked_bodies_are_read_to_their_end_within_the_limit(
    ingest_stack: IngestStack,
) -> None:
    """Without Content-Length (Transfer-Encoding: chunked) the body is read to its end, and
    the size limit still applies."""
    event = an_event()
    body = envelope(event)

    def chunks(data: bytes, size: int = 700) -> Iterator[bytes]:
        return (data[i:i + size] for i in range(0, len(data), size))

    response = requests.post(ingest_stack.endpoint("envelope"), data=chunks(body),
                             headers=ingest_stack.auth(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event["event_id"]}
    ingest_stack.landed("event_id = {id:UUID}", {"id": event["event_id"]}, expected=1)
    limit = ingest_stack.settings.ingest_max_body_bytes
    too_big = requests.post(ingest_stack.endpoint("store"),
                            data=chunks(b"{" + b" " * limit + b"}", 1 << 20),
                            headers=ingest_stack.auth(), timeout=30)
    assert_error(too_big, 413, f"exceeds {limit} bytes")


def test_gzip_bomb_is_413_without_inflating_it(ingest_stack: IngestStack) -> None:
    limit = ingest_stack.settings.ingest_max_decompressed_bytes
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(limit // len(chunk) * 4))
    bomb += compressor.flush()
    assert len(bomb) < 1_000_000  # ~400 MB of zeros in well under 1 MB
    response = post(ingest_stack, "envelope", bomb, {"Content-Encoding": "gzip"})
    assert_error(response, 413, "decompressed body exceeds")


def peak_memory_of(process: ManagedProcess) -> int:
    """The largest resident size (VmHWM) any process of the service has had, in bytes."""
    assert process.pid is not None
    root = psutil.Process(process.pid)
    peaks = []
    for proc in [root, *root.children(recursive=True)]:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024)  # type: ignore[index]
    return max(peaks)


def brotli_of_zeros(size: int) -> bytes:
    compressor = brotli.Compressor(quality=5)
    chunk = b"\0" * (1 << 20)
    return b"".join(compressor.process(chunk) for _ in range(size >> 20)) + compressor.finish()


def test_brotli_bomb_is_413_without_inflating_it(ingest_stack: IngestStack) -> None:
    limit = ingest_stack.settings.ingest_max_decompressed_bytes
    bomb = brotli_of_zeros(1 << 30)  # 1 GiB of zeros in ~2 KB: ten times the limit
    assert len(bomb) < 4096 and limit * 10 <= 1 << 30
    before = peak_memory_of(ingest_stack.ingest)
    response = post(ingest_stack, "envelope", bomb, {"Content-Encoding": "br"})
    assert_error(response, 413, "decompressed body exceeds")
    # It stopped at the limit: a whole slice of input used to expand to gigabytes at once.
    assert peak_memory_of(ingest_stack.ingest) < before + 3 * limit


def test_legacy_store_body_is_accepted_and_capped(ingest_stack: IngestStack) -> None:
    # Old SDKs post base64 of zlib-compressed JSON to /store/.
    event = an_event(message="from an old SDK")
    body = base64.b64encode(zlib.compress(json.dumps(event).encode()))
    response = post(ingest_stack, "store", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event["event_id"]}
    ingest_stack.landed("event_id = %(id)s", {"id": event["event_id"]}, 1)

    limit = ingest_stack.settings.ingest_max_decompressed_bytes
    compressor = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(limit // len(chunk) * 2))
    bomb = base64.b64encode(bomb + compressor.flush())
    assert len(bomb) < 1_000_000
    assert_error(post(ingest_stack, "store", bomb), 413, "decompressed body exceeds")
    assert_error(post(ingest_stack, "store", b"bm90IHpsaWI="), 400,
                 "not JSON (nor base64 of zlib-compressed JSON)")


def test_brotli_and_deflate_bodies_are_accepted(ingest_stack: IngestStack) -> None:
    body = envelope(an_event())
    for encoding, data in [("br", brotli.compress(body)), ("deflate", zlib.compress(body)),
                           ("deflate", zlib.compress(body)[2:-4])]:  # zlib-wrapped and raw
        response = post(ingest_stack, "envelope", data, {"Content-Encoding": encoding})
        assert response.status_code == 200, (encoding, response.text)


def test_multi_member_gzip_body_is_read_whole(ingest_stack: IngestStack) -> None:
    first, second = an_event(), an_event()
    body = envelope(first, second)
    cut = body.index(b'{"type"', body.index(b'{"type"') + 1)  # the second item's header
    two_members = gzip.compress(body[:cut]) + gzip.compress(body[cut:])  # `cat a.gz b.gz`
    response = post(ingest_stack, "envelope", two_members, {"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    ingest_stack.landed("event_id = {id:UUID}", {"id": second["event_id"]}, expected=1)
    trailing = post(ingest_stack, "envelope", gzip.compress(body) + b"junk",
                    {"Content-Encoding": "gzip"})
    assert_error(trailing, 400, "4 bytes after the end of its data that are not another gzip")


def test_unknown_content_encoding_is_415(ingest_stack: IngestStack) -> None:
    response = post(ingest_stack, "envelope", envelope(an_event()),
                    {"Content-Encoding": "compress"})
    assert_error(response, 415, "unsupported Content-Encoding 'compress'")


def test_corrupt_gzip_is_400(ingest_stack: IngestStack) -> None:
    response = post(ingest_stack, "envelope", b"\x1f\x8bnot gzip at all",
                    {"Content-Encoding": "gzip"})
    assert_error(response, 400, "not valid gzip data")


def test_empty_batch_is_400(ingest_stack: IngestStack) -> None:
    assert_error(post(ingest_stack, "events", b"[]"), 400, "the batch is empty")


def test_batch_that_is_not_an_array_is_400(ingest_stack: IngestStack) -> None:
    assert_error(post(ingest_stack, "events", b'{"message": "x"}'), 400, "JSON array of events")


def test_batch_answers_per_event(ingest_stack: IngestStack) -> None:
    good, bad = an_event(), an_event(level="catastrophic")
    response = post(ingest_stack, "events", json.dumps([good, bad, an_event()]).encode())
    assert response.status_code == 200, response.text
    body = response.json()
    assert good["event_id"] in body["accepted"] and len(body["accepted"]) == 2
    assert body["rejected"] == [
        {"index": 1, "reason": body["rejected"][0]["reason"]}
    ]
    assert "`event.level`" in body["rejected"][0]["reason"]


def test_ten_thousand_event_batch_lands_whole(ingest_stack: IngestStack) -> None:
    marker = uuid.uuid4().hex
    batch = [an_event(tags={"batch": marker}) for _ in range(10_000)]
    response = post(ingest_stack, "events", gzip.compress(json.dumps(batch).encode()),
                    {"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["accepted"]) == 10_000
    over = post(ingest_stack, "events", json.dumps([an_event()] * 10_001).encode())
    assert_error(over, 413, "at most 10000 per request")
    ingest_stack.landed(
        "project_id = {p:UInt64} AND position(payload, {m:String}) > 0",
        {"p": ingest_stack.project.project_id, "m": marker}, expected=10_000, timeout=60,
    )
    assert ingest_stack.warehouse.command(
        "SELECT count() FROM raw_events FINAL WHERE position(payload, {m:String}) > 0",
        parameters={"m": marker},
    ) == 10_000


def test_unknown_route_and_method_are_json_errors(ingest_stack: IngestStack) -> None:
    missing = requests.get(f"{ingest_stack.url}/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["detail"]
    wrong = requests.get(ingest_stack.endpoint("envelope"), timeout=10)
    assert wrong.status_code == 405 and wrong.json()["detail"]
