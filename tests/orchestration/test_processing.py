"""Events sent with the real sentry-sdk become issues in PostgreSQL and processed events in
ClickHouse while the runner (orchestration.runner, as `pulsetrace up` starts it) works."""

from __future__ import annotations

import hashlib
import json
import random
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cli.stack import processing_service, start_service
from core import db
from core.blobs import blob_store
from core.models import (
    Artifact,
    Issue,
    IssueStatus,
    Project,
    Release,
    ReprocessingPreviousIssue,
)
from core.redis import redis_client
from core.settings import Settings
from dashboards.api.issues import EVENT_DETAIL, event_json
from ingest.landing import LandingRow, drain, encode_row
from ingest.queue import LANDING_GROUP, LANDING_STREAM, ROW_COUNT_FIELD, ROWS_FIELD
from orchestration import processing
from orchestration.processing import Window, process_window, read_cursor, reprocess_window
from tests.ingest.test_bad_input import envelope, post
from tests.pipelines.test_symbolication import Bundle, build_bundle, sentry_event
from tests.stack import IngestStack

SENTRY_APP = Path(__file__).parents[1] / "ingest" / "sentry_app.py"


@pytest.fixture(scope="module")
def runner(ingest_stack: IngestStack) -> Iterator[IngestStack]:
    process = start_service(processing_service(ingest_stack.settings), ingest_stack.settings)
    try:
        yield ingest_stack
    finally:
        process.stop()


def wait_for(probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout} s: {probe}")


def issues_of(settings: Settings, project_id: int) -> list[Issue]:
    engine = db.make_engine(settings.database_url)
    with db.system_session(engine) as session:
        return list(session.scalars(select(Issue).where(Issue.project_id == project_id)))


def release_version(settings: Settings, release_id: int | None) -> str | None:
    engine = db.make_engine(settings.database_url)
    with db.system_session(engine) as session:
        return session.scalar(select(Release.version).where(Release.id == release_id))


def test_sentry_sdk_events_become_issues_and_processed_events(runner: IngestStack) -> None:
    stack = runner
    run_id = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, str(SENTRY_APP), stack.project.dsn, "gzip", run_id],
        capture_output=True, text=True, timeout=60, check=True,
    )
    ids = json.loads(done.stdout)

    def processed() -> list[tuple[Any, ...]]:
        rows = stack.warehouse.query(
            "SELECT replaceAll(toString(event_id), '-', ''), issue_id, title, culprit,"
            " release, user_email, payload FROM events FINAL WHERE event_id IN {ids:Array(UUID)}",
            parameters={"ids": list(ids.values())},
        ).result_rows
        return rows if len(rows) == 2 else []

    rows = {r[0]: r for r in wait_for(processed)}
    error = rows[ids["exception"]]
    assert error[2] == "PaymentDeclined: order 1234 could not be charged"
    assert "charge" in error[3]
    assert error[4] == "shop@1.0.4"
    # PII is gone from what is stored for users to see.
    assert "jane@example.com" not in error[6] and error[5] != "jane@example.com"

    issues = {i.id: i for i in issues_of(stack.settings, stack.project.project_id)}
    issue = issues[error[1]]
    assert issue.title == error[2]
    assert issue.status == IssueStatus.unresolved
    assert release_version(stack.settings, issue.first_release_id) == "shop@1.0.4"
    message_issue = issues[rows[ids["message"]][1]]
    assert message_issue.title == "inventory low for SKU-9"
    assert message_issue.id != issue.id


def test_a_new_release_reopens_a_resolved_issue(runner: IngestStack) -> None:
    stack = runner
    marker = uuid.uuid4().hex[:8]

    def send(release: str) -> str:
        event = {"event_id": uuid.uuid4().hex, "level": "error", "release": release,
                 "platform": "python",
                 "exception": {"values": [{"type": "LedgerMismatch", "value": f"run {marker}",
                                           "stacktrace": {"frames": [
                                               {"function": f"reconcile_{marker}",
                                                "module": "shop.ledger", "in_app": True,
                                                "lineno": 10}]}}]}}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200
        return event["event_id"]

    send("shop@2.0.0")
    engine = db.make_engine(stack.settings.database_url)

    def the_issue() -> Issue | None:
        with db.system_session(engine) as session:
            return session.scalar(select(Issue).where(Issue.title.contains(marker)))

    issue = wait_for(the_issue)
    with db.system_session(engine) as session, session.begin():
        stored = session.get(Issue, issue.id)
        assert stored is not None
        stored.status = IssueStatus.resolved
        stored.resolved_in_release_id = stored.first_release_id  # "resolved in 2.0.0"
        stored.resolved_at = datetime.now(UTC)
        stored.substatus = None

    send("shop@2.0.0")  # the same release again: still resolved
    send("shop@2.0.1")  # a newer release: a regression
    reopened = wait_for(lambda: (i := the_issue()) and i.status == IssueStatus.unresolved and i)
    assert reopened.substatus is not None and reopened.substatus.value == "regressed"
    assert release_version(stack.settings, reopened.regressed_in_release_id) == "shop@2.0.1"
    assert reopened.times_seen == 3


def test_first_release_comes_from_the_first_event_that_names_one(runner: IngestStack) -> None:
    stack = runner
    marker = uuid.uuid4().hex[:8]
    engine = db.make_engine(stack.settings.database_url)

    def send(**release: str) -> None:
        event = {"event_id": uuid.uuid4().hex, "level": "error", "message": f"stale {marker}",
                 **release}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200

    def the_issue() -> Issue | None:
        with db.system_session(engine) as session:
            return session.scalar(select(Issue).where(Issue.title.contains(marker)))

    send()  # an app that set no release at first
    assert wait_for(the_issue).first_release_id is None
    send(release="shop@3.0.0")
    issue = wait_for(lambda: (i := the_issue()) and i.times_seen == 2 and i)
    assert release_version(stack.settings, issue.first_release_id) == "shop@3.0.0"
    send()  # again without: the issue is updated, its release stays
    issue = wait_for(lambda: (i := the_issue()) and i.times_seen == 3 and i)
    assert release_version(stack.settings, issue.first_release_id) == "shop@3.0.0"


def test_running_a_processed_window_again_changes_nothing(runner: IngestStack) -> None:
    stack = runner
    engine = db.make_engine(stack.settings.database_url)
    cursor = read_cursor(engine)
    before = {i.id: i.times_seen for i in issues_of(stack.settings, stack.project.project_id)}
    events_before = stack.warehouse.command("SELECT count() FROM events FINAL")
    result = process_window(stack.warehouse, engine, blob_store(stack.settings),
                            Window(datetime(1970, 1, 1, tzinfo=UTC), cursor))
    assert result.raw == 0
    after = {i.id: i.times_seen for i in issues_of(stack.settings, stack.project.project_id)}
    assert after == before
    assert stack.warehouse.command("SELECT count() FROM events FINAL") == events_before


def test_an_event_landed_again_after_its_window_is_counted_once(runner: IngestStack) -> None:
    """The landing worker lands again what an insert that failed or was cut off left
    unacknowledged, though the warehouse may have taken it; processing has moved on by then."""
    stack = runner
    marker = uuid.uuid4().hex[:8]
    engine = db.make_engine(stack.settings.database_url)

    def an_event() -> dict[str, str]:
        return {"event_id": uuid.uuid4().hex, "level": "error", "message": f"twice {marker}"}

    def the_issue() -> Issue | None:
        with db.system_session(engine) as session:
            return session.scalar(select(Issue).where(Issue.title.contains(marker)))

    first = an_event()
    assert post(stack, "store", json.dumps(first).encode()).status_code == 200
    assert wait_for(the_issue).times_seen == 1
    # The same row again, as a landing consumer that read it and failed leaves it pending:
    # its next drain re-reads its own pending entries first, a retry.
    redis = redis_client(stack.settings.redis_url)
    row = encode_row(LandingRow(stack.project.org_id, stack.project.project_id,
                                first["event_id"], "event", time.time(), "127.0.0.1", "", "",
                                "", "", "", "", "", "", json.dumps(first).encode()))
    consumer = f"test-{marker}"
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(LANDING_STREAM, {ROW_COUNT_FIELD: 1, ROWS_FIELD: b"\x91" + row})
    pipe.xreadgroup(LANDING_GROUP, consumer, {LANDING_STREAM: ">"}, count=1)
    pipe.execute()
    assert drain(redis, stack.warehouse, consumer).rows == 1
    second = an_event()  # lands after the retry, so it is processed after it
    assert post(stack, "store", json.dumps(second).encode()).status_code == 200
    # Until the window of `second` has committed (the cursor moves in its transaction; its
    # processed row reaches ClickHouse before that commit), so every earlier one has too.
    landed = wait_for(lambda: stack.warehouse.command(
        "SELECT max(landed_at) FROM raw_events WHERE event_id = {id:UUID}"
        " HAVING count() > 0", parameters={"id": second["event_id"]}))
    landed = datetime.fromisoformat(str(landed))
    landed = landed if landed.tzinfo else landed.replace(tzinfo=UTC)
    wait_for(lambda: read_cursor(engine) >= landed)
    issue = the_issue()
    assert issue is not None and issue.times_seen == 2


def test_an_event_from_a_clock_hours_behind_is_dated_by_the_server(runner: IngestStack) -> None:
    """A device set to the wrong time zone: its envelope's sent_at tells ingest how far off
    its clock is, and the event's time is moved by as much (Relay's clock drift correction)."""
    stack = runner
    behind, now = timedelta(hours=3), datetime.now(UTC)
    happened = now - timedelta(seconds=1)  # by the server's clock
    event = {"event_id": uuid.uuid4().hex, "level": "error",
             "message": f"clock behind {uuid.uuid4().hex[:8]}",
             "timestamp": (happened - behind).timestamp()}
    body = envelope(event, header={"event_id": event["event_id"],
                                   "sent_at": (now - behind).isoformat()})
    assert post(stack, "envelope", body).status_code == 200
    [[stored, drift_ms]] = wait_for(lambda: stack.warehouse.query(
        "SELECT e.timestamp, r.clock_drift_ms FROM events AS e FINAL"
        " JOIN raw_events AS r ON r.event_id = e.event_id"
        " WHERE e.event_id = {id:UUID}", parameters={"id": event["event_id"]}).result_rows)
    assert abs(drift_ms - behind / timedelta(milliseconds=1)) < 5_000  # the request's travel
    assert abs(stored.replace(tzinfo=UTC) - happened) < timedelta(seconds=5)
    [row] = list(stack.warehouse.query(
        f"SELECT {EVENT_DETAIL} FROM events FINAL WHERE event_id = {{id:UUID}}",
        parameters={"id": event["event_id"]}).named_results())
    [correction] = event_json(row)["errors"]  # what the event's page says
    assert correction["type"] == "clock_drift" and "55 minutes" in correction["message"]


def store_source_map(settings: Settings, org_id: int, bundle: Bundle, release: str,
                     debug_id: str | None) -> None:
    """The bundle's map as an artifact of `release`: a row in PostgreSQL, bytes in the blob
    store, found by release + URL, and by `debug_id` when given."""
    sha1 = hashlib.sha1(bundle.sourcemap).hexdigest()
    key = f"artifacts/{org_id}/{sha1}"
    blob_store(settings).put(key, bundle.sourcemap, "application/json")
    with db.system_session(db.make_engine(settings.database_url)) as session, session.begin():
        stored = Release(organization_id=org_id, version=release)
        session.add(stored)
        session.flush()
        session.add(Artifact(
            organization_id=org_id, release_id=stored.id, name="~/static/js/app.min.js.map",
            blob_key=key, sha1=sha1, size=len(bundle.sourcemap),
            content_type="application/json", debug_id=debug_id,
        ))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_bundle(tmp_path_factory.mktemp("shop"))


@pytest.mark.parametrize("by", ["release", "debug_id"])
def test_minified_frames_are_symbolicated_from_release_artifacts(
    runner: IngestStack, bundle: Bundle, by: str
) -> None:
    """A source map uploaded as a release artifact (row in PostgreSQL, bytes in the blob
    store) turns the minified frame into the original file, line and function."""
    stack = runner
    settings = stack.settings
    release = f"shop@{uuid.uuid4().hex[:8]}"
    store_source_map(settings, stack.project.org_id, bundle, release,
                     bundle.debug_id if by == "debug_id" else None)
    event = sentry_event(bundle, release=release if by == "release" else "other@1",
                         debug_ids=by == "debug_id")
    assert post(stack, "store", json.dumps(event).encode()).status_code == 200

    def stacktrace() -> str:
        rows = stack.warehouse.query(
            "SELECT stacktrace, culprit FROM events FINAL WHERE event_id = {id:UUID}",
            parameters={"id": event["event_id"]}).result_rows
        return rows[0] if rows else ""

    trace, culprit = wait_for(stacktrace)
    frames = json.loads(trace)[-1]["stacktrace"]["frames"]
    innermost = frames[-1]
    assert innermost["filename"] == "src/cart.js"
    assert innermost["function"] == "checkout"
    assert innermost["data"]["symbolicated"] is True
    assert innermost["data"]["resolved_with"] == by
    assert "new CartError(" in innermost["context_line"]
    assert culprit == "checkout in src/cart.js" or "checkout" in culprit


def test_transactions_and_feedback_reach_their_tables(runner: IngestStack) -> None:
    stack = runner
    start = datetime.now(UTC).timestamp() - 2
    transaction = {"event_id": uuid.uuid4().hex, "type": "transaction", "transaction": "/cart",
                   "start_timestamp": start, "timestamp": start + 0.8,
                   "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16,
                                          "op": "pageload"}},
                   "measurements": {"lcp": {"value": 1800.0}}}
    report = {"event_id": uuid.uuid4().hex, "name": "Ada", "email": "ada@example.com",
              "comments": "Checkout froze"}
    body = b"\n".join([
        b"{}",
        json.dumps({"type": "transaction"}).encode(), json.dumps(transaction).encode(),
        json.dumps({"type": "user_report"}).encode(), json.dumps(report).encode(),
    ]) + b"\n"
    assert post(stack, "envelope", body).status_code == 200

    def landed() -> tuple[Any, ...] | None:
        tx = stack.warehouse.query(
            "SELECT transaction_name, duration_ms, measurements.name FROM transactions FINAL"
            " WHERE event_id = {id:UUID}", parameters={"id": transaction["event_id"]}
        ).result_rows
        fb = stack.warehouse.query(
            "SELECT message, name FROM feedback FINAL WHERE event_id = {id:UUID}",
            parameters={"id": report["event_id"]}).result_rows
        return (tx[0], fb[0]) if tx and fb else None

    (name, duration, measurements), (message, person) = wait_for(landed)
    assert (name, round(duration), measurements) == ("/cart", 800, ["lcp"])
    assert (message, person) == ("Checkout froze", "Ada")


def test_odd_text_and_feedback_do_not_stop_processing(runner: IngestStack) -> None:
    """A NUL character (PostgreSQL text cannot hold one) and feedback naming an id that is no
    event id used to fail their window forever, and every later event waited behind it."""
    stack = runner
    marker = uuid.uuid4().hex[:8]
    nul = {"event_id": uuid.uuid4().hex, "level": "error", "release": "shop@4.0.0\u0000x",
           "message": f"nul {marker}\u0000 in the message"}
    feedback = {"event_id": uuid.uuid4().hex, "contexts": {"feedback": {
        "message": f"broken {marker}", "associated_event_id": "not-an-event-id"}}}
    after = {"event_id": uuid.uuid4().hex, "level": "error", "message": f"after {marker}"}
    body = b"\n".join([b"{}", json.dumps({"type": "event"}).encode(), json.dumps(nul).encode(),
                       json.dumps({"type": "feedback"}).encode(),
                       json.dumps(feedback).encode()]) + b"\n"
    assert post(stack, "envelope", body).status_code == 200
    assert post(stack, "store", json.dumps(after).encode()).status_code == 200

    titles = wait_for(lambda: (found := {i.title for i in issues_of(
        stack.settings, stack.project.project_id) if marker in i.title}) >= {
        f"nul {marker} in the message", f"after {marker}"} and found)
    assert all("\x00" not in title for title in titles)
    [(issue_id,)] = wait_for(lambda: stack.warehouse.query(
        "SELECT issue_id FROM feedback FINAL WHERE feedback_id = {id:UUID}",
        parameters={"id": feedback["event_id"]}).result_rows)
    assert issue_id == 0  # it names no event: linked to no issue


def test_resolved_in_a_git_sha_release_reopens_on_a_later_one(runner: IngestStack) -> None:
    """Releases named by commit are ordered by date: the release an issue was resolved in
    must be known even when the window holds no event of it."""
    stack = runner
    marker = uuid.uuid4().hex[:8]
    engine = db.make_engine(stack.settings.database_url)

    def send(release: str) -> None:
        event = {"event_id": uuid.uuid4().hex, "level": "error", "release": release,
                 "message": f"sha {marker}"}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200

    def the_issue() -> Issue | None:
        with db.system_session(engine) as session:
            return session.scalar(select(Issue).where(Issue.title.contains(marker)))

    send(f"{marker}aaa")
    issue = wait_for(the_issue)
    with db.system_session(engine) as session, session.begin():
        stored = session.get(Issue, issue.id)
        assert stored is not None
        stored.status = IssueStatus.resolved
        stored.resolved_in_release_id = stored.first_release_id
        stored.resolved_at = datetime.now(UTC)
        stored.substatus = None
    time.sleep(1.1)  # the later release is created later: dates order them
    send(f"{marker}bbb")
    reopened = wait_for(lambda: (i := the_issue()) and i.status == IssueStatus.unresolved and i)
    assert release_version(stack.settings, reopened.regressed_in_release_id) == f"{marker}bbb"


def test_reprocessing_a_range_counts_nothing_twice(runner: IngestStack) -> None:
    stack = runner
    marker = uuid.uuid4().hex[:8]
    engine = db.make_engine(stack.settings.database_url)
    start = datetime.now(UTC)
    for n in range(3):
        event = {"event_id": uuid.uuid4().hex, "level": "error", "message": f"again {marker}",
                 "extra": {"n": n}}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200

    def counted() -> Issue | None:
        found = [i for i in issues_of(stack.settings, stack.project.project_id)
                 if marker in i.title]
        return found[0] if found and found[0].times_seen == 3 else None

    issue = wait_for(counted)
    # To a time past the live cursor: cut there, so nothing the runner has yet to count is
    # counted here as well.
    result = reprocess_window(stack.warehouse, engine, blob_store(stack.settings), start,
                              datetime.now(UTC) + timedelta(hours=1))
    assert result.raw >= 3
    assert wait_for(counted).times_seen == 3 == issue.times_seen
    stored = stack.warehouse.command(
        "SELECT count() FROM events FINAL WHERE issue_id = {id:UInt64}",
        parameters={"id": issue.id})
    assert stored == 3


def test_reprocess_command_refuses_an_empty_range() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pulsetrace"), "reprocess", "--from",
         "2026-11-02T00:00:00", "--to", "2026-11-01T00:00:00"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "the range is empty" in done.stderr


def test_reprocessing_over_many_windows_counts_the_issues_it_creates(
    runner: IngestStack,
) -> None:
    """Reprocessing that groups events into a new issue (after a grouping change; here the
    issue was deleted) counts all of them, window after window, not only the first window's."""
    stack = runner
    marker = uuid.uuid4().hex[:8]
    engine = db.make_engine(stack.settings.database_url)
    start = datetime.now(UTC)

    def the_issue() -> Issue | None:
        with db.system_session(engine) as session:
            return session.scalar(select(Issue).where(Issue.title.contains(marker)))

    for n in range(1, 4):  # one landing (one window) each
        event = {"event_id": uuid.uuid4().hex, "level": "error", "message": f"split {marker}"}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200
        wait_for(lambda n=n: (i := the_issue()) and i.times_seen == n)
    with db.system_session(engine) as session, session.begin():
        issue = session.scalar(select(Issue).where(Issue.title.contains(marker)))
        session.delete(issue)

    result = reprocess_window(stack.warehouse, engine, blob_store(stack.settings), start,
                              datetime.now(UTC), max_rows=1)
    assert result.raw == 3 and result.new_issues == 1
    recreated = the_issue()
    assert recreated is not None and recreated.times_seen == 3


@pytest.mark.parametrize("first_attempt", ["commits", "fails after its rows are stored"])
def test_reprocessing_moves_regrouped_events_counts_to_their_new_issue(
    runner: IngestStack, monkeypatch: pytest.MonkeyPatch, first_attempt: str,
) -> None:
    """A project adds a scrubbing pattern that masks the customer's name in messages: events
    landed since are grouped by the masked message, into a new issue. Reprocessing the older
    events moves them there too; each counts in the issue it is in now, and no longer in the
    one it left. Reprocessing the range again changes nothing.

    An attempt whose transaction fails after its rows reached ClickHouse (which commits
    apart) leaves the counts as they were, and the next attempt moves them all the same."""
    stack = runner
    # Letters only: grouping strips a hex marker, and each run (parameter) needs issues of its own.
    marker = "".join(random.choices(string.ascii_lowercase, k=12))
    engine = db.make_engine(stack.settings.database_url)
    start = datetime.now(UTC)

    def send(customer: str) -> None:
        event = {"event_id": uuid.uuid4().hex, "level": "error",
                 "message": f"charge failed for customer {customer} ({marker})"}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200

    def counts() -> dict[str, int]:
        return {i.title.split("customer ")[1].split(" ")[0]: i.times_seen
                for i in issues_of(stack.settings, stack.project.project_id)
                if marker in i.title}

    def set_patterns(patterns: list[str]) -> None:
        with db.system_session(engine) as session, session.begin():
            project = session.get(Project, stack.project.project_id)
            assert project is not None
            project.settings = {**(project.settings or {}),
                                "scrubbing": {"extra_patterns": patterns}}

    def stored_in_masked() -> int:
        [masked] = [i for i in issues_of(stack.settings, stack.project.project_id)
                    if marker in i.title and "[Filtered]" in i.title]
        return int(stack.warehouse.command(
            "SELECT count() FROM events FINAL"
            " WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64}",
            parameters={"p": stack.project.project_id, "i": masked.id}))

    for customer in ("acme", "acme", "globex"):
        send(customer)
    wait_for(lambda: counts() == {"acme": 2, "globex": 1})
    set_patterns([rf"(?<=customer )\w+(?= \({marker}\))"])
    try:
        send("acme")
        wait_for(lambda: counts() == {"acme": 2, "globex": 1, "[Filtered]": 1})
        if first_attempt != "commits":
            with monkeypatch.context() as patch:
                # The last step before the commit; every row is in ClickHouse by then.
                patch.setattr(processing, "_mark_retried", lost_connection)
                with pytest.raises(ConnectionError):
                    reprocess_window(stack.warehouse, engine, blob_store(stack.settings),
                                     start, datetime.now(UTC) + timedelta(hours=1))
            assert counts() == {"acme": 2, "globex": 1, "[Filtered]": 1}
            assert stored_in_masked() == 4  # what made the next attempt count nothing
        for _ in range(2):  # the second run finds every event where it belongs already
            result = reprocess_window(stack.warehouse, engine, blob_store(stack.settings),
                                      start, datetime.now(UTC) + timedelta(hours=1))
            assert result.raw == 4
            # The issues the events left stay, seen 0 times (as Sentry keeps them).
            assert counts() == {"acme": 0, "globex": 0, "[Filtered]": 4}
    finally:
        set_patterns([])
    assert stored_in_masked() == 4
    with db.system_session(engine) as session:  # nothing left held for a later run
        assert session.scalar(select(func.count()).select_from(ReprocessingPreviousIssue)
                              .where(ReprocessingPreviousIssue.project_id
                                     == stack.project.project_id)) == 0


def lost_connection(*args: Any, **kwargs: Any) -> Any:
    """Stands in for a step of a window's transaction: PostgreSQL went away before the
    commit."""
    raise ConnectionResetError("server closed the connection unexpectedly")


def test_first_release_is_the_earliest_events_whatever_the_order_they_arrive_in(
    runner: IngestStack,
) -> None:
    """An app that set no release at first: its first event has none. An event of a newer
    release gives the issue its first release; then an event delayed on its way (an offline
    client) arrives, older and of an older release: that one is the release introducing it."""
    stack = runner
    marker = uuid.uuid4().hex[:8]
    engine = db.make_engine(stack.settings.database_url)
    now = datetime.now(UTC)

    def send(hours_ago: int, **release: str) -> None:
        event = {"event_id": uuid.uuid4().hex, "level": "error", "message": f"late {marker}",
                 "timestamp": (now - timedelta(hours=hours_ago)).isoformat(), **release}
        assert post(stack, "store", json.dumps(event).encode()).status_code == 200

    def the_issue(times_seen: int) -> Issue | None:
        with db.system_session(engine) as session:
            issue = session.scalar(select(Issue).where(Issue.title.contains(marker)))
        return issue if issue is not None and issue.times_seen == times_seen else None

    send(3)  # no release
    wait_for(lambda: the_issue(1))
    send(1, release=f"{marker}@2.0.0")
    wait_for(lambda: the_issue(2))
    send(2, release=f"{marker}@1.0.0")  # earlier than the 2.0.0 event, arrived after it
    issue = wait_for(lambda: the_issue(3))
    assert release_version(stack.settings, issue.first_release_id) == f"{marker}@1.0.0"
    send(0, release=f"{marker}@3.0.0")  # later: the first release stays
    issue = wait_for(lambda: the_issue(4))
    assert release_version(stack.settings, issue.first_release_id) == f"{marker}@1.0.0"
