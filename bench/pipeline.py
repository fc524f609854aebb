"""Processing throughput and the delay from ingest to issue.

Aims: 10,000 events/s processed on 2 cores; p95 under 5 s from the ingest's 200 to the issue
existing in PostgreSQL, under steady load. Both are the team's own (set with issue 5's first
build): the issue itself names no figure beyond leaving per-event peers far behind (Bugsink
processes about 47 events/s on this kind of machine).

1. The pipeline functions alone (symbolicate → scrub → fingerprint → event rows) on 100k
   realistic events, in batches of 10k as the runner would take them: in one process, then
   (1b) through the runner's pool of worker processes, one per core.
2. Through the Dagster asset: 100k raw events landed in a real stack (`pulsetrace up`), as
   the landing worker lands them, processed by the stack's own runner (the
   `process_raw_events` job per window, the worker pool, the marts rebuilding beside it).
3. Steady load on the running stack: new errors at a fixed rate through the ingest, each a
   new issue; the time from the 200 to the issue existing in PostgreSQL.

Usage: .venv/bin/python bench/pipeline.py [--events 100000] [--rate 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as `python bench/pipeline.py`, this folder comes first on sys.path, where
# bench/ingest.py would shadow the `ingest` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import orjson  # noqa: E402
import polars as pl  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import select  # noqa: E402

from core.embedded.process import free_port  # noqa: E402

PULSETRACE = str(Path(sys.executable).parent / "pulsetrace")
FUNCTIONS = ["checkout", "placeOrder", "renderCart", "loadProfile", "submitForm", "fetchPrices",
             "applyCoupon", "trackClick", "parseResponse", "saveDraft"]
ERRORS = ["TypeError", "ReferenceError", "RangeError", "SyntaxError", "NetworkError"]


def realistic_event(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """(item_type, event): JS and Python errors, messages and page-load transactions, with
    the data that varies in real traffic (ids, emails, URLs, users) and some PII to scrub."""
    user = {"id": str(rng.randint(1, 5000)), "email": f"user{rng.randint(1, 5000)}@example.com",
            "ip_address": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"}
    common = {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "release":
              f"shop@1.{rng.randint(0, 3)}.0", "environment": "production", "user": user,
              "tags": {"page": f"/cart/{rng.randint(1, 999)}", "plan": rng.choice(["free", "pro"])},
              "request": {"url": f"https://shop.example.com/cart?id={i}&token=sk_{i:012d}",
                          "headers": {"Authorization": f"Bearer abc.{i}.xyz",
                                      "User-Agent": "Mozilla/5.0"}}}
    kind = rng.random()
    if kind < 0.2:
        start = time.time() - rng.random()
        return "transaction", {**common, "type": "transaction", "transaction": "/cart",
                               "start_timestamp": start, "timestamp": start + 0.3,
                               "contexts": {"trace": {"trace_id": uuid.uuid4().hex,
                                                      "span_id": uuid.uuid4().hex[:16],
                                                      "op": "pageload"}},
                               "measurements": {"lcp": {"value": rng.uniform(500, 4000)},
                                                "cls": {"value": rng.random() / 5}},
                               "spans": [{"op": "http.client", "description": "GET /api/cart",
                                          "start_timestamp": start + 0.01,
                                          "timestamp": start + 0.01 + rng.random() / 10}]}
    if kind < 0.3:
        return "event", {**common, "level": "warning",
                         "message": f"Cart {rng.randint(1, 10**6)} for {user['email']} is stale"}
    bug = rng.randrange(60)
    frames = [{"filename": f"https://shop.example.com/static/js/vendor.{rng.randint(1, 9)}.js",
               "function": "r", "lineno": 1, "colno": rng.randint(1, 9000), "in_app": False}]
    frames += [{"filename": f"https://shop.example.com/static/js/app.{bug % 7}.js",
                "abs_path": f"https://shop.example.com/static/js/app.{bug % 7}.js",
                "function": FUNCTIONS[(bug + d) % len(FUNCTIONS)], "lineno": 1 + d,
                "colno": rng.randint(1, 5000), "in_app": True} for d in range(3)]
    crumbs = [{"category": "ui.click", "message": f"button#buy-{j}", "timestamp": time.time()}
              for j in range(5)]
    return "event", {**common, "platform": "javascript", "level": "error",
                     "exception": {"values": [{"type": ERRORS[bug % len(ERRORS)],
                                               "value": f"bug {bug}: id {rng.randint(1, 10**9)}",
                                               "stacktrace": {"frames": frames}}]},
                     "breadcrumbs": {"values": crumbs},
                     "contexts": {"browser": {"name": "Chrome", "version": "156"}}}


def raw_frame(n: int, seed: int = 7) -> pl.DataFrame:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        item_type, event = realistic_event(rng, i)
        rows.append({"organization_id": 1, "project_id": 1 + i % 3, "event_id": event["event_id"],
                     "item_type": item_type, "received_at": now, "client_ip": "203.0.113.5",
                     "user_agent": "Mozilla/5.0", "ua_browser": "Chrome",
                     "ua_browser_version": "156.0", "ua_os": "Linux", "ua_os_version": "",
                     "ua_device": "Other", "sdk_name": "sentry.javascript.browser",
                     "sdk_version": "11.12.0", "payload": orjson.dumps(event).decode()})
    return pl.DataFrame(rows, schema_overrides={"organization_id": pl.UInt64,
                                                "project_id": pl.UInt64,
                                                "received_at": pl.Datetime("ms", "UTC")})


class NoSourceMaps:
    def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
        return None

    def by_release(self, organization_id: int, release: str, dist: str | None,
                   url: str) -> bytes | None:
        return None


def bench_functions(n: int, batch: int = 10_000) -> None:
    from pipelines.fingerprinting import fingerprint_events
    from pipelines.processed import event_rows, transaction_rows
    from pipelines.scrubbing import ScrubConfig, scrub_payloads
    from pipelines.symbolication import SourceMapCache, symbolicate_payloads

    frame = raw_frame(n)
    configs = {p: ScrubConfig() for p in (1, 2, 3)}
    stages: dict[str, float] = {"symbolicate": 0, "scrub": 0, "fingerprint": 0, "rows": 0}
    cache = SourceMapCache()
    started = time.perf_counter()
    for offset in range(0, n, batch):
        part = frame.slice(offset, batch)
        t = time.perf_counter()
        part = symbolicate_payloads(part, NoSourceMaps(), cache)
        stages["symbolicate"] += time.perf_counter() - t
        t = time.perf_counter()
        part = scrub_payloads(part, configs)
        stages["scrub"] += time.perf_counter() - t
        t = time.perf_counter()
        part = fingerprint_events(part)
        stages["fingerprint"] += time.perf_counter() - t
        t = time.perf_counter()
        event_rows(part)
        transaction_rows(part)
        stages["rows"] += time.perf_counter() - t
    total = time.perf_counter() - started
    print(f"1. pipeline functions, {n:,} events in batches of {batch:,}: "
          f"{n / total:,.0f} events/s on one core (aim 10,000/s on 2 cores)")
    for name, seconds in stages.items():
        print(f"   {name:<12} {n / seconds:>10,.0f} events/s  ({seconds / total:.0%} of the time)")


class Stack:
    """`pulsetrace up` in a temporary data dir, for phases 2 and 3."""

    def __init__(self, tmp: Path) -> None:
        self.data_dir = tmp / "data"
        self.env = dict(os.environ, INGEST_RATE_LIMIT_PER_MINUTE="100000000")
        for name in ("POSTGRES_PORT", "REDIS_PORT", "WAREHOUSE_PORT", "INGEST_PORT",
                     "DASHBOARD_PORT", "DAGSTER_PORT"):
            self.env[name] = str(free_port())
        self.log = (tmp / "up.log").open("w")
        self.process = subprocess.Popen([PULSETRACE, "up", "--data-dir", str(self.data_dir)],
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while subprocess.run([PULSETRACE, "status", "--data-dir", str(self.data_dir)],
                             env=self.env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the stack did not become healthy")
            time.sleep(0.5)
        state = json.loads((self.data_dir / "run" / "stack.json").read_text())
        self.environment: dict[str, str] = state["environment"]
        boot = subprocess.run(
            [PULSETRACE, "bootstrap", "--data-dir", str(self.data_dir), "--org", "bench",
             "--project", "web", "--email", "bench@example.com", "--password", "bench password",
             "--json"], env=self.env, capture_output=True, text=True, check=True)
        self.project = json.loads(boot.stdout)
        self.wait_idle()

    def wait_idle(self, cores: float = 0.1, timeout: float = 180.0) -> None:
        """Until the stack's processes use less than `cores` over two seconds: at start the
        runner builds the marts once (many CPU-seconds of dbt), which would share the 2
        cores with the phases measured here (the pool of phase 1b ran ~35% slower)."""
        root = psutil.Process(self.process.pid)

        def busy() -> float:
            total = 0.0
            for process in (root, *root.children(recursive=True)):
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system + times.children_user + times.children_system
            return total

        deadline = time.monotonic() + timeout
        before = busy()
        while time.monotonic() < deadline:
            time.sleep(2.0)
            now = busy()
            if now - before < cores * 2.0:
                return
            before = now
        print(f"(the stack was still busy after {timeout:.0f} s; measuring anyway)")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        self.log.close()


def bench_functions_parallel(stack: Stack, n: int, batch: int = 10_000) -> None:
    """The same functions through the runner's worker pool: batches split over the cores."""
    from orchestration.parallel import PipelinePool, worker_count
    from pipelines.scrubbing import ScrubConfig

    workers = worker_count(0)
    pool = PipelinePool(stack.environment["DATABASE_URL"], stack.environment["BLOB_URL"], None,
                        workers=workers)
    frame = raw_frame(n)
    configs = {p: ScrubConfig() for p in (1, 2, 3)}
    try:
        pool.run(frame.slice(0, batch), configs)  # starts the workers: not timed
        started = time.perf_counter()
        for offset in range(0, n, batch):
            pool.run(frame.slice(offset, batch), configs)
        total = time.perf_counter() - started
    finally:
        pool.close()
    print(f"1b. the same through the runner's pool of {workers} worker processes: "
          f"{n / total:,.0f} events/s (aim 10,000/s on 2 cores)")


def bench_asset(stack: Stack, n: int, landing_batch: int = 5_000) -> None:
    """Land n raw events as the landing worker does (inserts of 5,000 rows) and time the
    stack's own runner over them: its Dagster job per window, the worker pool, the issues in
    PostgreSQL and the rows in ClickHouse, with the marts rebuilding beside it, as
    `pulsetrace up` runs. The clock starts when the first rows land and stops when the
    runner's cursor has passed the last."""
    os.environ.update(stack.environment)
    from core.db import make_engine
    from core.warehouse import connect
    from ingest.landing import COLUMNS
    from orchestration.processing import read_cursor

    client = connect(stack.environment["CLICKHOUSE_URL"])
    engine = make_engine(stack.environment["DATABASE_URL"])
    frame = raw_frame(n, seed=11).with_columns(
        pl.lit(stack.project["org_id"], pl.UInt64).alias("organization_id"),
        pl.lit(stack.project["project_id"], pl.UInt64).alias("project_id"))
    rows = frame.select(COLUMNS)
    started = time.perf_counter()
    for offset in range(0, n, landing_batch):
        client.insert_arrow("raw_events", rows.slice(offset, landing_batch).to_arrow())
    last_landed = client.query(
        "SELECT max(landed_at) FROM raw_events WHERE project_id = {p:UInt64}",
        parameters={"p": stack.project["project_id"]}).result_rows[0][0]
    last_landed = last_landed if last_landed.tzinfo else last_landed.replace(tzinfo=UTC)
    deadline = started + 900
    while read_cursor(engine) < last_landed:
        if time.perf_counter() > deadline:
            raise SystemExit("the runner did not process the landed events within 15 min")
        time.sleep(0.1)
    total = time.perf_counter() - started
    processed = int(client.command(
        "SELECT count() FROM events FINAL WHERE project_id = {p:UInt64}",
        parameters={"p": stack.project["project_id"]}))
    print(f"2. the stack's runner (Dagster job per window, pool of {os.cpu_count()} workers) "
          f"over {n:,} raw events landed in inserts of {landing_batch:,}: "
          f"{n / total:,.0f} events/s from landing to processed "
          f"({processed:,} error events now in ClickHouse; aim 10,000/s)")


def bench_delay(stack: Stack, rate: float, seconds: float) -> None:
    from core import db
    from core.models import Issue

    engine = db.make_engine(stack.environment["DATABASE_URL"])
    url = f"{stack.environment['PUBLIC_INGEST_URL']}/api/{stack.project['project_id']}/store/"
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={stack.project['public_key']}"}
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() or len(seen) < len(sent):
            with db.system_session(engine) as session:
                titles = session.scalars(select(Issue.title).where(
                    Issue.project_id == stack.project["project_id"],
                    Issue.title.like("DelayProbe%")))
                now = time.monotonic()
                for title in titles:
                    marker = title.split(": ", 1)[1]
                    if marker in sent:  # not an earlier run's probe on the same project
                        seen.setdefault(marker, now)
            if stop.is_set() and time.monotonic() - last_send > 30:
                break
            time.sleep(0.05)

    last_send = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    session = requests.Session()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        marker = uuid.uuid4().hex
        event = {"event_id": uuid.uuid4().hex, "level": "error", "platform": "python",
                 "exception": {"values": [{"type": "DelayProbe", "value": marker,
                                           "stacktrace": {"frames": [{
                                               "function": f"probe_{marker}", "module": "bench",
                                               "in_app": True}]}}]}}
        response = session.post(url, data=json.dumps(event), headers=headers, timeout=10)
        if response.status_code == 200:
            sent[marker] = last_send = time.monotonic()
        time.sleep(max(0.0, 1 / rate - 0.001))
    stop.set()
    watcher.join(timeout=60)
    delays = sorted(seen[m] - t for m, t in sent.items() if m in seen)
    missing = len(sent) - len(delays)
    p50 = statistics.median(delays)
    p95 = delays[min(len(delays) - 1, int(len(delays) * 0.95))]
    print(f"3. delay from ingest 200 to the issue in PostgreSQL, {rate:.0f} new issues/s for "
          f"{seconds:.0f} s: p50 {p50:.2f} s, p95 {p95:.2f} s (aim p95 < 5 s); "
          f"{len(delays)} of {len(sent)} seen, {missing} missing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    bench_functions(args.events)
    with tempfile.TemporaryDirectory(prefix="pulsetrace-bench-") as tmp:
        stack = Stack(Path(tmp))
        try:
            bench_functions_parallel(stack, args.events)
            bench_asset(stack, args.events)
            bench_delay(stack, args.rate, args.seconds)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
