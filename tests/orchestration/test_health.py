"""A processing runner that keeps failing does not pass for healthy: its heartbeat lapses, so
`pulsetrace status` reports it, and it beats again once a window goes through."""

from __future__ import annotations

import dataclasses
import time

from cli.stack import processing_service, start_service
from core import heartbeat
from core.redis import redis_client
from tests.stack import IngestStack


def test_a_failing_runner_loses_its_heartbeat(ingest_stack: IngestStack) -> None:
    # A warehouse nobody listens on: every attempt fails.
    broken = dataclasses.replace(ingest_stack.settings,
                                 external_clickhouse_url="http://127.0.0.1:9")
    process = start_service(processing_service(broken), broken)  # healthy at first
    redis = redis_client(broken.redis_url)
    try:
        deadline = time.monotonic() + 60
        while heartbeat.alive(redis, heartbeat.PROCESSING) and time.monotonic() < deadline:
            time.sleep(0.5)
        # And it stays lapsed while the retries go on (they used to beat now and then).
        for _ in range(30):
            assert not heartbeat.alive(redis, heartbeat.PROCESSING)
            time.sleep(0.5)
        assert process.running()  # still retrying
    finally:
        process.stop()
