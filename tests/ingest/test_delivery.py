"""Rate limits, retries, CORS, metrics and faults on the write path."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cli.bootstrap import BootstrapResult
from cli.stack import ingest_service, landing_worker_service, start_service
from core import db
from core.embedded.process import ManagedProcess, free_port
from core.inflight import inserts_in_flight_since
from core.redis import redis_client
from core.settings import Settings
from ingest.auth import KeyCache, KeysUnavailable
from ingest.landing import LandingRow, encode_row
from ingest.queue import LANDING_STREAM
from tests.ingest.test_bad_input import an_event, envelope, post
from tests.stack import CuttableProxy, IngestStack, silent_server


def test_a_retried_event_lands_once(ingest_stack: IngestStack) -> None:
    event = an_event()
    body = envelope(event)
    for _ in range(3):  # an SDK retrying after a timeout
        response = post(ingest_stack, "envelope", body)
        assert response.status_code == 200
        assert response.json() == {"id": event["event_id"]}
    post(ingest_stack, "store", json.dumps(event).encode())
    time.sleep(2)  # several landing cycles
    rows = ingest_stack.warehouse.query(
        "SELECT count() FROM raw_events WHERE event_id = {id:UUID}",  # no FINAL: really once
        parameters={"id": event["event_id"]},
    ).result_rows
    assert rows[0][0] == 1


def test_a_batch_spanning_several_queue_entries_lands_each_event_once(
    ingest_stack: IngestStack,
) -> None:
    # 250 events fill three landing-stream entries (100 rows each); one id repeats inside the
    # batch and one was sent before: each still lands exactly once.
    earlier = an_event()
    assert post(ingest_stack, "envelope", envelope(earlier)).status_code == 200
    events = [an_event() for _ in range(250)]
    batch = [*events, events[0], earlier]
    response = post(ingest_stack, "events", json.dumps(batch).encode())
    assert response.status_code == 200
    assert sorted(response.json()["accepted"]) == sorted(
        [e["event_id"] for e in events] + [events[0]["event_id"], earlier["event_id"]])
    ids = [e["event_id"] for e in [*events, earlier]]
    rows = ingest_stack.landed("event_id IN {ids:Array(UUID)}", {"ids": ids}, 251)
    assert len(rows) == 251
    time.sleep(1.5)  # more landing cycles: nothing arrives twice
    counts = ingest_stack.warehouse.query(
        "SELECT event_id, count() AS n FROM raw_events WHERE event_id IN {ids:Array(UUID)}"
        " GROUP BY event_id HAVING n > 1", parameters={"ids": ids}).result_rows
    assert counts == []


def test_an_entry_queued_by_an_older_version_still_lands(ingest_stack: IngestStack) -> None:
    # Before rows were grouped per request, an entry held one row under `r`: an upgrade with
    # such entries still queued must land them, not stall the worker.
    event_id = uuid.uuid4().hex
    row = LandingRow(
        organization_id=ingest_stack.project.org_id, project_id=ingest_stack.project.project_id,
        event_id=event_id, item_type="event", received_at=time.time(), client_ip="203.0.113.1",
        user_agent="", ua_browser="", ua_browser_version="", ua_os="", ua_os_version="",
        ua_device="", sdk_name="sentry.python", sdk_version="2.75.0",
        payload=json.dumps({"event_id": event_id, "message": "queued before"}).encode())
    redis_client(ingest_stack.settings.redis_url).xadd(LANDING_STREAM, {"r": encode_row(row)})
    rows = ingest_stack.landed("event_id = {id:UUID}", {"id": event_id}, 1)
    assert len(rows) == 1


def test_rate_limit_slides_and_tells_sdks_to_back_off(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, set_key: Callable[..., None]
) -> None:
    # 400/min over the tests' 3 s window = 20 events per window.
    set_key(fresh_project.public_key, rate_limit_per_minute=400)
    time.sleep(1.2)  # the key cache (1 s in tests) picks the limit up
    window = ingest_stack.settings.ingest_rate_limit_window_seconds
    pid, key = fresh_project.project_id, fresh_project.public_key

    def send(n: int) -> requests.Response:
        return post(ingest_stack, "events", json.dumps([an_event() for _ in range(n)]).encode(),
                    project_id=pid, key=key)

    # Fill most of the window late in it, then cross the edge of a fixed window.
    first = send(15)
    assert len(first.json()["accepted"]) == 15
    time.sleep(window / 2)
    second = send(15)
    body = second.json()
    # A fixed window restarting here would take all 15 (a 2x burst); the sliding one takes 5.
    assert len(body["accepted"]) == 5, body
    assert [r["reason"] for r in body["rejected"]] == ["rate_limited"] * 10
    assert int(second.headers["Retry-After"]) >= 1
    assert second.headers["X-Sentry-Rate-Limits"].endswith("::key:key_quota")

    refused = post(ingest_stack, "envelope", envelope(an_event()), project_id=pid, key=key)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= window + 1
    assert "X-Sentry-Rate-Limits" in refused.headers

    time.sleep(window + 0.5)  # the whole window has slid past: full allowance again
    assert len(send(20).json()["accepted"]) == 20
    assert send(1).status_code == 429


def test_cors_preflight_and_origins(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, set_key: Callable[..., None]
) -> None:
    url = f"{ingest_stack.endpoint('envelope', fresh_project.project_id)}" \
          f"?sentry_key={fresh_project.public_key}&sentry_version=7"
    origin = {"Origin": "https://shop.example.com"}
    pre = requests.options(url, headers={**origin, "Access-Control-Request-Method": "POST"},
                           timeout=10)
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    ok = requests.post(url, data=envelope(an_event()), headers=origin, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"

    from sqlalchemy import update

    from core import db
    from core.models import Project

    engine = db.make_engine(ingest_stack.settings.database_url)
    with db.system_session(engine) as session, session.begin():
        session.execute(update(Project).where(Project.id == fresh_project.project_id)
                        .values(allowed_origins=["https://shop.example.com"]))
    time.sleep(1.2)
    other = requests.post(url, data=envelope(an_event()),
                          headers={"Origin": "https://evil.example"}, timeout=10)
    assert other.status_code == 403
    assert "origin is not allowed" in other.json()["detail"]
    assert requests.post(url, data=envelope(an_event()), headers=origin,
                         timeout=10).status_code == 200

    # A refused preflight still carries CORS headers, so the page can read why.
    bad = requests.options(url.replace(fresh_project.public_key, "f" * 32), headers=origin,
                           timeout=10)
    assert bad.status_code == 403
    assert bad.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "unknown DSN key" in bad.json()["detail"]


def test_session_and_client_report_items_are_accepted_and_counted(
    ingest_stack: IngestStack,
) -> None:
    session = json.dumps({"sid": uuid.uuid4().hex, "status": "ok", "init": True}).encode()
    report = json.dumps({"discarded_events": []}).encode()
    attachment = b"\x00binary\n\nlog"
    body = b"\n".join([
        b"{}",
        json.dumps({"type": "session"}).encode(), session,
        json.dumps({"type": "client_report"}).encode(), report,
        json.dumps({"type": "attachment", "length": len(attachment),
                    "filename": "app.log"}).encode(), attachment,
    ]) + b"\n"
    response = post(ingest_stack, "envelope", body)
    assert response.status_code == 200, response.text
    metrics = requests.get(f"{ingest_stack.url}/metrics", timeout=10).text
    for item_type in ("session", "client_report", "attachment"):
        assert f'pulsetrace_ingest_items_counted_total{{item_type="{item_type}"}}' in metrics


def test_metrics_count_accepted_rejected_and_landing(ingest_stack: IngestStack) -> None:
    post(ingest_stack, "envelope", envelope(an_event()))
    post(ingest_stack, "envelope", b"{broken")
    time.sleep(1.5)
    metrics = requests.get(f"{ingest_stack.url}/metrics", timeout=10).text
    for name in ('pulsetrace_ingest_events_accepted_total{item_type="event"}',
                 'pulsetrace_ingest_events_rejected_total{reason="invalid"}',
                 "pulsetrace_ingest_request_seconds_bucket",
                 "pulsetrace_landing_batch_rows_count",
                 "pulsetrace_landing_lag_seconds_count",
                 "pulsetrace_landing_queue_depth"):
        assert name in metrics, name


def test_redis_down_is_503_with_retry_after(stack_settings: Settings, ingest_stack: IngestStack,
                                            monkeypatch: object) -> None:
    import dataclasses

    dead = dataclasses.replace(
        stack_settings, ingest_port=free_port(),
        external_redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    spec = ingest_service(dead)
    spec.health = lambda: requests.get(f"{spec.url}/health", timeout=2).status_code == 503
    ingest = start_service(spec, dead)
    try:
        response = requests.post(f"{spec.url}/api/{ingest_stack.project.project_id}/envelope/",
                                 data=envelope(an_event()), headers=ingest_stack.auth(),
                                 timeout=30)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "retry later" in response.json()["detail"]
    finally:
        ingest.stop()


def test_silent_redis_is_503_within_the_timeout(stack_settings: Settings,
                                               ingest_stack: IngestStack) -> None:
    import dataclasses

    with silent_server() as url:
        silent = dataclasses.replace(stack_settings, ingest_port=free_port(),
                                     external_redis_url=url, ingest_redis_timeout_seconds=1.0)
        spec = ingest_service(silent)
        # /health pings Redis: it answers 503 after the timeout instead of hanging.
        spec.health = lambda: requests.get(f"{spec.url}/health", timeout=5).status_code == 503
        ingest = start_service(spec, silent)
        try:
            started = time.monotonic()
            response = requests.post(
                f"{spec.url}/api/{ingest_stack.project.project_id}/envelope/",
                data=envelope(an_event()), headers=ingest_stack.auth(), timeout=30)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert time.monotonic() - started < 4  # two reads of 1 s (one reconnect)
        finally:
            ingest.stop()


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[tuple[CuttableProxy, str]]:
    """A proxy in front of the session's PostgreSQL, and the database URL through it."""
    url = make_url(postgres_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.close()


def test_a_cached_key_outlives_postgres_only_for_the_grace_period(
    ingest_stack: IngestStack, fresh_project: BootstrapResult,
    postgres_proxy: tuple[CuttableProxy, str],
) -> None:
    proxy, url = postgres_proxy
    engine = db.make_engine(url)
    cache = KeyCache(engine, ttl_seconds=0.2, stale_seconds=1.5)
    try:
        key, project_id = fresh_project.public_key, fresh_project.project_id
        info = cache.authenticate(key, project_id)
        proxy.cut()
        time.sleep(0.3)  # past the TTL: the reload fails, the last answer is served
        assert cache.authenticate(key, project_id) == info
        with pytest.raises(KeysUnavailable):  # never looked up: nothing to serve
            cache.authenticate(ingest_stack.project.public_key, ingest_stack.project.project_id)
        time.sleep(1.5)  # past the grace period
        with pytest.raises(KeysUnavailable):
            cache.authenticate(key, project_id)
        proxy.restore()
        assert cache.authenticate(key, project_id) == info
    finally:
        engine.dispose()


def test_postgres_down_serves_cached_keys_and_is_503_for_others(
    stack_settings: Settings, ingest_stack: IngestStack, fresh_project: BootstrapResult,
    postgres_proxy: tuple[CuttableProxy, str], set_key: Callable[..., None],
) -> None:
    import dataclasses

    proxy, url = postgres_proxy
    settings = dataclasses.replace(stack_settings, ingest_port=free_port(),
                                   external_database_url=url)
    spec = ingest_service(settings)
    # One worker process: the key cache is per process.
    spec.argv[spec.argv.index("--workers") + 1] = "1"
    ingest = start_service(spec, settings)

    def send(project: BootstrapResult) -> requests.Response:
        return requests.post(f"{spec.url}/api/{project.project_id}/envelope/",
                             data=envelope(an_event()),
                             headers=ingest_stack.auth(project.public_key), timeout=30)

    try:
        assert send(fresh_project).status_code == 200  # the key is now cached
        proxy.cut()
        time.sleep(1.5)  # past the key cache's TTL (1 s in tests)
        stale = send(fresh_project)
        assert stale.status_code == 200, stale.text
        unknown = send(ingest_stack.project)  # never looked up by this process
        assert unknown.status_code == 503, unknown.text
        assert unknown.headers["Retry-After"] == "5"
        assert "retry later" in unknown.json()["detail"]
        # PostgreSQL back: a revoked key stops working within seconds, as before.
        proxy.restore()
        set_key(fresh_project.public_key, is_active=False)
        deadline = time.monotonic() + 10
        while (response := send(fresh_project)).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.2)
        assert response.status_code == 403 and "revoked" in response.json()["detail"]
    finally:
        ingest.stop()


def test_a_lock_on_the_keys_is_answered_within_seconds(
    stack_settings: Settings, ingest_stack: IngestStack, fresh_project: BootstrapResult,
) -> None:
    """PostgreSQL up but stuck behind a lock (a migration, VACUUM FULL): a key lookup gives
    up after 3 s; a key seen lately is served as last seen, others get 503."""
    import dataclasses

    settings = dataclasses.replace(stack_settings, ingest_port=free_port())
    spec = ingest_service(settings)
    spec.argv[spec.argv.index("--workers") + 1] = "1"  # the key cache is per process
    ingest = start_service(spec, settings)
    engine = db.make_engine(stack_settings.database_url)

    def send(project: BootstrapResult) -> tuple[requests.Response, float]:
        started = time.monotonic()
        response = requests.post(f"{spec.url}/api/{project.project_id}/envelope/",
                                 data=envelope(an_event()),
                                 headers=ingest_stack.auth(project.public_key), timeout=30)
        return response, time.monotonic() - started

    try:
        assert send(fresh_project)[0].status_code == 200  # the key is now cached
        with engine.begin() as locked:
            locked.execute(text("LOCK TABLE project_keys IN ACCESS EXCLUSIVE MODE"))
            time.sleep(1.5)  # past the key cache's TTL (1 s in tests)
            stale, took = send(fresh_project)
            assert stale.status_code == 200, stale.text
            assert took < 5
            unknown, took = send(ingest_stack.project)  # never looked up by this process
            assert unknown.status_code == 503, unknown.text
            assert unknown.headers["Retry-After"] == "5"
            assert took < 5
        assert send(ingest_stack.project)[0].status_code == 200  # the lock is gone
    finally:
        engine.dispose()
        ingest.stop()


def test_killing_the_worker_mid_batch_loses_nothing(ingest_stack: IngestStack) -> None:
    ingest_stack.worker.stop()  # events pile up in Redis while no worker runs
    # Its 30,000 events fill the key's whole rate-limit window (600,000 a minute, over the
    # tests' 3 s window): earlier tests' events must have left the window first.
    time.sleep(ingest_stack.settings.ingest_rate_limit_window_seconds)
    marker = uuid.uuid4().hex
    accepted: list[str] = []
    rejected: list[object] = []
    try:
        for _ in range(6):
            batch = [an_event(tags={"fault": marker}) for _ in range(5000)]
            response = post(ingest_stack, "events", json.dumps(batch).encode())
            assert response.status_code == 200
            accepted += response.json()["accepted"]
            rejected += response.json().get("rejected") or []
        assert len(accepted) == 30_000, rejected[:5]
    except BaseException:
        # The stack's worker runs again, so that this failure is not every later test's.
        ingest_stack.worker = start_service(landing_worker_service(ingest_stack.settings),
                                            ingest_stack.settings)
        raise

    def landed() -> int:
        return int(ingest_stack.warehouse.command(
            "SELECT count() FROM raw_events FINAL WHERE position(payload, {m:String}) > 0",
            parameters={"m": marker},
        ))

    settings = ingest_stack.settings
    redis = redis_client(settings.redis_url)
    worker = start_service(landing_worker_service(settings), settings)
    deadline = time.monotonic() + 60
    # Killed during its first insert (it marks each one in flight): a batch read from the
    # stream, maybe taken by the warehouse, certainly not acknowledged, and the rest unread.
    while inserts_in_flight_since(redis) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGKILL)
    worker.stop()
    assert landed() < 30_000, "the worker finished before it could be killed"

    ingest_stack.worker = replacement = start_service(landing_worker_service(settings), settings)
    deadline = time.monotonic() + 90
    while landed() < 30_000 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert landed() == 30_000
    ids = ingest_stack.warehouse.query(
        "SELECT lower(replaceAll(toString(event_id), '-', '')) FROM raw_events FINAL"
        " WHERE position(payload, {m:String}) > 0",
        parameters={"m": marker},
    ).result_rows
    assert sorted(r[0] for r in ids) == sorted(accepted)  # every 200, exactly once
    assert replacement.running()


__all__ = ["ManagedProcess"]
