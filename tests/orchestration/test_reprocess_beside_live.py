"""Reprocessing while the stack runs: a reprocessing window and a live window never store at
the same time. Both lock the same issues; run together, PostgreSQL found them deadlocked and
aborted one, and a reprocessing window aborted after some of its rows reached ClickHouse
read as "moved already" when run again, so those events' counts were lost."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

import orchestration.processing as processing
from core import db
from core.blobs import blob_store
from orchestration.processing import REPROCESSING_LOCK, BatchResult, Window, process_window
from tests.orchestration.test_dead_letters import raw_of, times_seen
from tests.orchestration.test_parallel import land
from tests.orchestration.test_processing import wait_for
from tests.stack import IngestStack, new_project


def waiting_for_the_reprocessing_lock(engine: Any) -> bool:
    """Whether a transaction waits for REPROCESSING_LOCK (a bigint advisory lock: its high
    and low 32 bits are classid and objid)."""
    with db.system_session(engine) as session:
        return bool(session.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = :high AND objid = :low"),
            {"high": REPROCESSING_LOCK >> 32, "low": REPROCESSING_LOCK & 0xFFFFFFFF}))


def test_reprocessing_waits_for_the_live_window_in_flight(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = ingest_stack
    engine = db.make_engine(stack.settings.database_url)
    blobs = blob_store(stack.settings)
    project = new_project(stack.settings)
    live_cursor = f"test-live-{uuid.uuid4().hex}"
    first = land(stack, raw_of(project, ["queue full", "queue full"]))
    process_window(stack.warehouse, engine, blobs, first, cursor_name=live_cursor)
    second = land(stack, raw_of(project, ["queue full"]))

    # The live runner's next window stops inside its transaction, having read its events.
    inside, go_on = threading.Event(), threading.Event()
    read_raw_events = processing.read_raw_events

    def read_then_wait(client: Any, window: Window) -> Any:
        rows = read_raw_events(client, window)
        if threading.current_thread().name == "live":
            inside.set()
            go_on.wait(60)
        return rows

    monkeypatch.setattr(processing, "read_raw_events", read_then_wait)
    # Reprocessing stops at the live cursor: this test's.
    monkeypatch.setattr(processing, "read_cursor", lambda engine, name="": second.upto)
    results: dict[str, BatchResult] = {}
    live = threading.Thread(name="live", target=lambda: results.update(live=process_window(
        stack.warehouse, engine, blobs, Window(first.upto, second.upto),
        cursor_name=live_cursor)))
    reprocess = threading.Thread(target=lambda: results.update(
        reprocessed=processing.reprocess_window(stack.warehouse, engine, blobs, first.upto,
                                                first.upto + timedelta(microseconds=1))))
    live.start()
    try:
        assert inside.wait(60)
        reprocess.start()
        wait_for(lambda: not reprocess.is_alive() or waiting_for_the_reprocessing_lock(engine))
        assert reprocess.is_alive(), "reprocessing stored while a live window was in flight"
        assert waiting_for_the_reprocessing_lock(engine)
    finally:
        go_on.set()
        live.join(60)
        if reprocess.is_alive() or reprocess.ident is not None:
            reprocess.join(120)

    assert results["live"].raw == 1
    assert results["reprocessed"].raw == 2
    assert times_seen(engine, project.project_id) == {"queue full": 3}
