"""Events nested deeper than any SDK sends are refused at the door, with a readable reason:
past it, the JSON libraries of the pipeline give up (254-1,000 levels) and the event could
not be processed."""

from __future__ import annotations

import json
import uuid

import requests

from ingest.schema import MAX_DEPTH, InvalidEvent, too_deep, validate_event
from tests.stack import IngestStack


def nested_event(levels: int) -> bytes:
    # `extra` adds one level, the event itself another; brackets in strings do not count.
    inner = "[" * levels + "]" * levels
    return (f'{{"event_id":"{uuid.uuid4().hex}","message":"[[{{ not nesting",'
            f'"extra":{{"a":{inner}}}}}').encode()


def test_depth_counts_structure_not_strings() -> None:
    assert not too_deep(nested_event(MAX_DEPTH - 2))
    assert too_deep(nested_event(MAX_DEPTH - 1))
    assert not too_deep(b'{"a":"' + b"[" * 500 + b'","b":' + b"[{}]" * 300 + b"}")
    assert too_deep(b'{"a":"]]]]","b":' + b"[" * 300 + b"]" * 300 + b"}")


def test_deeper_than_the_limit_is_refused() -> None:
    validate_event(nested_event(MAX_DEPTH - 2))  # the limit itself passes
    for levels in (MAX_DEPTH - 1, 5_000):
        try:
            validate_event(nested_event(levels))
        except InvalidEvent as exc:
            assert f"more than {MAX_DEPTH} levels deep" in str(exc)
        else:
            raise AssertionError(f"{levels} levels accepted")


def test_ingest_answers_400_for_deep_events(ingest_stack: IngestStack) -> None:
    for levels, status in ((MAX_DEPTH - 2, 200), (2_000, 400)):
        response = requests.post(ingest_stack.endpoint("store"), data=nested_event(levels),
                                 headers=ingest_stack.auth(), timeout=30)
        assert response.status_code == status, response.text
    assert "levels deep" in json.loads(response.text)["detail"]
