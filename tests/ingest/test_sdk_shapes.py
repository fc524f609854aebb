"""Events shaped as official SDKs send them when the app hands over odd values are accepted:
an SDK does not retry a 400, so refusing them would lose the event. The pipeline then reads
them leniently (tests/pipelines/test_odd_events.py)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.ingest.test_bad_input import an_event, assert_error, envelope, post
from tests.stack import IngestStack

SHAPES = {
    "a tag set to a list or an object": {"tags": {"ids": [1, 2], "cart": {"items": 3}}},
    "level in upper case (Python logging)": {"level": "WARNING"},
    "level of another logging library": {"level": "notice"},
    "a fingerprint part that was undefined in JS": {"fingerprint": ["{{ default }}", None]},
    "breadcrumb data as a list, message as a number": {
        "breadcrumbs": {"values": [{"category": "http", "data": [1, 2], "message": 404}]}},
    "numeric user id and username": {"user": {"id": 1.5, "username": 42}},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_odd_values_from_apps_are_accepted(ingest_stack: IngestStack, shape: str) -> None:
    event = an_event(**SHAPES[shape])
    response = post(ingest_stack, "envelope", envelope(event))
    assert response.status_code == 200, response.text
    ingest_stack.landed("event_id = {id:UUID}", {"id": event["event_id"]}, expected=1)


def test_a_level_that_is_no_level_is_still_400(ingest_stack: IngestStack) -> None:
    event = {"event_id": uuid.uuid4().hex, "message": "m", "level": "catastrophic"}
    assert_error(post(ingest_stack, "store", json.dumps(event).encode()), 400, "`event.level`")
