"""A large batch runs through the pipeline in worker processes and gives exactly the rows the
caller's process gives, source maps from storage included."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import select

from core import db
from core.blobs import blob_store
from core.models import Issue
from ingest.landing import COLUMNS
from orchestration.parallel import MIN_ROWS_PER_WORKER, PipelinePool
from orchestration.processing import Window, process_window, read_cursor
from orchestration.source_maps import StoredSourceMaps
from pipelines.batch import process_raw_events
from pipelines.scrubbing import ScrubConfig
from tests.orchestration.test_processing import store_source_map
from tests.orchestration.windows import land_frame
from tests.pipelines.grouping_set import generate, raw_events_frame
from tests.pipelines.test_symbolication import Bundle, build_bundle, sentry_event
from tests.stack import IngestStack, new_project


@pytest.fixture(scope="module")
def pool(ingest_stack: IngestStack) -> Iterator[PipelinePool]:
    settings = ingest_stack.settings
    workers = PipelinePool(settings.database_url, settings.blob_url, None, workers=2)
    try:
        yield workers
    finally:
        workers.close()


@pytest.fixture(scope="module")
def stored_bundle(ingest_stack: IngestStack, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A minified bundle whose map is a release artifact, found by its debug id."""
    bundle = build_bundle(tmp_path_factory.mktemp("shop"))
    store_source_map(ingest_stack.settings, ingest_stack.project.org_id, bundle,
                     f"shop@{uuid.uuid4().hex[:8]}", bundle.debug_id)
    return bundle


def a_large_batch(stack: IngestStack, bundle: Bundle) -> tuple[pl.DataFrame, str]:
    """The grouping set (30+ bugs, PII, many platforms) grown past two workers' threshold,
    with one minified browser error; returns the raw frame and that error's id."""
    events = [event for _, event in generate(events_per_bug=80)]
    browser_error = sentry_event(bundle, release="other@1")
    events.append(browser_error)
    events += [dict(e, event_id=uuid.uuid4().hex) for e in events[: 2 * MIN_ROWS_PER_WORKER
                                                                    - len(events)]]
    raw = raw_events_frame(events).with_columns(
        pl.lit(stack.project.org_id, pl.UInt64).alias("organization_id"),
        pl.lit(stack.project.project_id, pl.UInt64).alias("project_id"),
        pl.lit("203.0.113.9").alias("client_ip"))
    return raw, browser_error["event_id"]


def land(stack: IngestStack, raw: pl.DataFrame) -> Window:
    """Lands raw in raw_events in one insert; returns the window that holds just that insert."""
    return land_frame(stack.warehouse, raw.select(COLUMNS))


def test_a_large_batch_in_worker_processes_gives_the_callers_rows(
    ingest_stack: IngestStack, pool: PipelinePool, stored_bundle: Bundle
) -> None:
    settings = ingest_stack.settings
    raw, browser_error = a_large_batch(ingest_stack, stored_bundle)
    assert pool.parts_for(raw.height) == 2
    configs = {ingest_stack.project.project_id: ScrubConfig(ip_mode="hash", hash_salt="s")}

    in_workers = pool.run(raw, configs)
    here = process_raw_events(raw, configs, StoredSourceMaps(
        db.make_engine(settings.database_url), blob_store(settings)))

    for name in ("events", "transactions", "feedback"):
        assert_frame_equal(getattr(in_workers, name), getattr(here, name))
    assert in_workers.events.height == raw.height
    # The workers read the source map from PostgreSQL and the blob store themselves.
    trace = in_workers.events.filter(pl.col("event_id") == browser_error)["stacktrace"][0]
    innermost = orjson.loads(trace)[-1]["stacktrace"]["frames"][-1]
    assert (innermost["filename"], innermost["function"]) == ("src/cart.js", "checkout")
    assert innermost["data"]["resolved_with"] == "debug_id"
    # Scrubbed in the workers as in the caller: no email survives.
    assert not in_workers.events["payload"].str.contains(r"[\w.]+@example\.(com|org)").any()


def test_process_window_spreads_a_large_window_over_the_pool(
    ingest_stack: IngestStack, pool: PipelinePool, stored_bundle: Bundle
) -> None:
    stack = ingest_stack
    raw, _ = a_large_batch(stack, stored_bundle)
    # Fresh ids, received now (raw_events keeps a week: the set's old dates would expire).
    raw = raw.with_columns(pl.Series("event_id", [uuid.uuid4().hex for _ in range(raw.height)]),
                           pl.lit(datetime.now(UTC)).cast(pl.Datetime("ms", "UTC"))
                           .alias("received_at"))
    window = land(stack, raw)
    result = process_window(
        stack.warehouse, db.make_engine(stack.settings.database_url),
        blob_store(stack.settings), window, cursor_name=None, pool=pool)
    assert (result.raw, result.events) == (raw.height, raw.height)
    stored = stack.warehouse.command(
        "SELECT count() FROM events FINAL WHERE issue_id > 0 AND event_id IN"
        " (SELECT event_id FROM raw_events WHERE landed_at = {at:DateTime64(6, 'UTC')})",
        parameters={"at": window.upto})
    assert stored == raw.height


def test_a_window_stored_in_chunks_leaves_the_issues_of_storing_it_whole(
    ingest_stack: IngestStack
) -> None:
    """The live runner stores a large window chunk by chunk while the workers process the
    next: the issues (counts, first and last seen, first release, titles) and the feedback's
    link to its issue must come out as when the window is stored in one piece."""
    stack = ingest_stack
    engine = db.make_engine(stack.settings.database_url)
    events = [event for _, event in generate(events_per_bug=80)]
    # Received now (raw_events keeps a week: the set's old dates would expire), so their times
    # move into the last day, in their order: a time 30 days before its receipt reads as the
    # receive time, and the issues' first and last seen would all be when each run received.
    earliest, day_ago = min(e["timestamp"] for e in events), datetime.now(UTC).timestamp() - 86_400
    events = [dict(e, timestamp=day_ago + (e["timestamp"] - earliest) / 30) for e in events]
    events += [dict(e, event_id=uuid.uuid4().hex) for e in events[:4_200 - len(events)]]
    random.Random(5).shuffle(events)  # each bug's events spread over every chunk
    chunked = PipelinePool(stack.settings.database_url, stack.settings.blob_url, None,
                           workers=2, chunk_rows=1_000)
    issues: dict[str, list[tuple[object, ...]]] = {}
    try:
        for name, pool in (("whole", None), ("in chunks", chunked)):
            project = new_project(stack.settings)
            ids = [uuid.uuid4().hex for _ in events]
            report = {"event_id": ids[-1], "name": "Ada", "comments": "it broke"}
            raw = raw_events_frame([dict(e, event_id=i) for e, i in zip(events, ids,
                                                                       strict=True)])
            # The feedback lands first, about the window's last event (in the last chunk).
            feedback = raw.head(1).with_columns(pl.lit(ids[-1]).alias("event_id"),
                                                pl.lit("user_report").alias("item_type"),
                                                pl.lit(orjson.dumps(report).decode())
                                                .alias("payload"))
            raw = pl.concat([feedback, raw]).with_columns(
                pl.lit(project.org_id, pl.UInt64).alias("organization_id"),
                pl.lit(project.project_id, pl.UInt64).alias("project_id"),
                pl.lit(datetime.now(UTC)).cast(pl.Datetime("ms", "UTC")).alias("received_at"))
            result = process_window(
                stack.warehouse, engine, blob_store(stack.settings), land(stack, raw),
                cursor_name=f"test-chunks-{uuid.uuid4().hex}", pool=pool)
            assert (result.raw, result.events, result.feedback) == (raw.height,
                                                                     raw.height - 1, 1)
            with db.system_session(engine) as session:
                issues[name] = sorted(session.execute(
                    select(Issue.fingerprint_hash, Issue.title, Issue.culprit, Issue.level,
                           Issue.times_seen,
                           Issue.first_seen, Issue.last_seen, Issue.first_release_id)
                    .where(Issue.project_id == project.project_id)).all())
                by_id = dict(session.execute(
                    select(Issue.id, Issue.fingerprint_hash)
                    .where(Issue.project_id == project.project_id)).all())
            linked = stack.warehouse.query(
                "SELECT issue_id FROM feedback FINAL WHERE project_id = {p:UInt64}",
                parameters={"p": project.project_id}).result_rows[0][0]
            last_event_issue = stack.warehouse.query(
                "SELECT issue_id FROM events FINAL WHERE event_id = {id:UUID}",
                parameters={"id": ids[-1]}).result_rows[0][0]
            assert linked == last_event_issue and by_id[linked]
    finally:
        chunked.close()
    assert len(issues["whole"]) >= 30
    assert issues["in chunks"] == issues["whole"]


def test_events_of_a_deleted_project_do_not_block_the_others(ingest_stack: IngestStack) -> None:
    """A project deleted after its events were accepted leaves rows nothing can hold: they
    are dropped, and the window's other events are processed and the cursor moves on."""
    stack = ingest_stack
    engine = db.make_engine(stack.settings.database_url)
    project = new_project(stack.settings)
    events = [{"event_id": uuid.uuid4().hex, "message": f"still here {i}", "level": "error"}
              for i in range(2)]
    raw = raw_events_frame(events).with_columns(
        pl.Series("organization_id", [project.org_id] * 2, pl.UInt64),
        pl.Series("project_id", [project.project_id, 2**40], pl.UInt64),  # 2**40: no project
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("ms", "UTC")).alias("received_at"))
    window = land(stack, raw)
    cursor = f"test-orphans-{uuid.uuid4().hex}"
    result = process_window(stack.warehouse, engine, blob_store(stack.settings), window,
                            cursor_name=cursor)
    assert (result.raw, result.events) == (2, 1)
    with db.system_session(engine) as session:
        titles = session.scalars(select(Issue.title).where(
            Issue.project_id == project.project_id)).all()
    assert titles == ["still here 0"]
    assert read_cursor(engine, cursor) == window.upto
