"""Files sent with an event (envelope items of type `attachment`) are stored: the bytes in the
blob store, a row in PostgreSQL `event_attachments`; an envelope sent again stores them once,
an attachment ingest cannot store is answered 503, so that the SDK sends it again, and files
sent without their event take a place in the key's rate limit."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select

from cli.bootstrap import BootstrapResult
from core import db
from core.blobs import blob_store
from core.models import EventAttachment
from tests.ingest.attachment_app import LOG, SCREENSHOT
from tests.ingest.test_bad_input import an_event, assert_error, post
from tests.stack import IngestStack

APP = Path(__file__).with_name("attachment_app.py")


def attachments_of(stack: IngestStack, event_id: str) -> list[EventAttachment]:
    with db.system_session(db.make_engine(stack.settings.database_url)) as session:
        return list(session.scalars(select(EventAttachment).where(
            EventAttachment.event_id == event_id).order_by(EventAttachment.name)))


def with_files(event: dict[str, object], *files: tuple[dict[str, object], bytes]) -> bytes:
    """An envelope of `event` and attachment items (headers, bytes), as SDKs write them."""
    payload = json.dumps(event).encode()
    lines = [json.dumps({"event_id": event["event_id"]}).encode(),
             json.dumps({"type": "event", "length": len(payload)}).encode(), payload]
    for headers, data in files:
        lines += [json.dumps({"type": "attachment", "length": len(data), **headers}).encode(),
                  data]
    return b"\n".join(lines) + b"\n"


def test_files_sent_with_the_sentry_sdk_are_stored_with_their_event(
    ingest_stack: IngestStack,
) -> None:
    stack = ingest_stack
    done = subprocess.run([sys.executable, str(APP), stack.project.dsn], capture_output=True,
                          text=True, timeout=60, check=True)
    event_id = done.stdout.strip()
    stack.landed("event_id = {id:UUID}", {"id": event_id}, expected=1)
    log, screenshot = attachments_of(stack, event_id)
    blobs = blob_store(stack.settings)
    for stored, name, content_type, data in ((log, "cart.log", "text/plain", LOG),
                                             (screenshot, "screen shot (1).png", "image/png",
                                              SCREENSHOT)):
        assert (stored.name, stored.content_type, stored.attachment_type) == (
            name, content_type, "event.attachment")
        assert (stored.size, stored.sha1) == (len(data), hashlib.sha1(data).hexdigest())
        assert (stored.organization_id, stored.project_id) == (stack.project.org_id,
                                                               stack.project.project_id)
        assert blobs.get(stored.blob_key) == data


def test_an_envelope_sent_again_stores_its_files_once(ingest_stack: IngestStack) -> None:
    event = an_event()
    body = with_files(event, ({"filename": "a.txt"}, b"first"),
                      ({"filename": "a.txt", "attachment_type": "event.view_hierarchy",
                        "content_type": "application/json"}, b'{"windows": []}'))
    for _ in range(2):  # the answer to the first send was lost
        assert post(ingest_stack, "envelope", body).status_code == 200
    first, second = sorted(attachments_of(ingest_stack, str(event["event_id"])),
                           key=lambda a: a.size)
    assert (first.content_type, first.attachment_type) == ("application/octet-stream",
                                                           "event.attachment")
    assert (second.attachment_type, second.size) == ("event.view_hierarchy", 15)


def test_an_attachment_without_a_filename_is_refused_and_nothing_is_queued(
    ingest_stack: IngestStack,
) -> None:
    event = an_event()
    answer = post(ingest_stack, "envelope", with_files(event, ({}, b"log")))
    assert_error(answer, 400, "item 2 (attachment): it has no `filename`")
    answer = post(ingest_stack, "envelope",
                  with_files(event, ({"filename": "a", "content_type": 7}, b"log")))
    assert_error(answer, 400, "its `content_type` must be a string")
    assert attachments_of(ingest_stack, str(event["event_id"])) == []


def test_a_file_the_blob_store_refuses_is_answered_503_and_stored_when_sent_again(
    ingest_stack: IngestStack,
) -> None:
    stack = ingest_stack
    event = an_event()
    body = with_files(event, ({"filename": "crash.txt"}, b"boom"))
    # A file where the event's folder of attachments goes: the blob store cannot write there.
    blocked = (Path(urlsplit(stack.settings.blob_url).path) / "attachments"
               / str(stack.project.org_id) / str(stack.project.project_id) / event["event_id"])
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_bytes(b"")
    answer = post(stack, "envelope", body)
    assert_error(answer, 503, "the attachments could not be stored; retry later")
    assert answer.headers["Retry-After"] == "5"
    assert attachments_of(stack, str(event["event_id"])) == []
    blocked.unlink()
    assert post(stack, "envelope", body).status_code == 200  # the SDK sends it again
    [stored] = attachments_of(stack, str(event["event_id"]))
    assert blob_store(stack.settings).get(stored.blob_key) == b"boom"
    # The event itself was queued by the first send, and lands once.
    assert len(stack.landed("event_id = {id:UUID}", {"id": event["event_id"]}, 1)) == 1


def test_files_sent_without_their_event_count_against_the_key_rate_limit(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, set_key: Callable[..., None]
) -> None:
    # 400/min over the tests' 3 s window = 20 events per window; an envelope of files alone
    # takes one place. Before, such envelopes passed any limit and filled the blob store.
    set_key(fresh_project.public_key, rate_limit_per_minute=400)
    time.sleep(1.2)  # the key cache (1 s in tests) picks the limit up
    event_ids = [uuid.uuid4().hex for _ in range(25)]
    answers = []
    for event_id in event_ids:
        item = json.dumps({"type": "attachment", "length": 3, "filename": "app.log"}).encode()
        body = b"\n".join([json.dumps({"event_id": event_id}).encode(), item, b"log"]) + b"\n"
        answers.append(post(ingest_stack, "envelope", body,
                            project_id=fresh_project.project_id, key=fresh_project.public_key))
    assert [a.status_code for a in answers] == [200] * 20 + [429] * 5
    assert answers[-1].headers["X-Sentry-Rate-Limits"].endswith("::key:key_quota")
    assert [len(attachments_of(ingest_stack, event_id)) for event_id in event_ids] == (
        [1] * 20 + [0] * 5)
    # Nothing was queued to land for them: the next event of the key lands alone.
    time.sleep(ingest_stack.settings.ingest_rate_limit_window_seconds + 0.5)
    event = an_event()
    assert post(ingest_stack, "events", json.dumps([event]).encode(),
                project_id=fresh_project.project_id,
                key=fresh_project.public_key).status_code == 200
    landed = ingest_stack.landed("project_id = {p:UInt64}", {"p": fresh_project.project_id}, 1)
    assert len(landed) == 1
