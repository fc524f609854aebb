"""Warehouse server vs in-process chDB: insert throughput and trivial-query latency.

    .venv/bin/python bench/warehouse.py [--rounds 5] [--batches 6] [--queries 300]

Both sides use clickhouse-connect: the server side over HTTP to `python -m
core.embedded.warehouse` (a child process), the in-process side through clickhouse-connect's
chDB backend on a data directory of its own. Rounds alternate between the two so that noise
from other work on the machine hits both alike. Goal (issue 2): the server keeps at least
half the in-process insert rate and adds under 2 ms to a trivial query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from core.embedded.process import free_port
from core.embedded.warehouse_service import start_warehouse

ROWS = 10_000
TABLE_DDL = """
CREATE TABLE IF NOT EXISTS bench_events (
    event_id UInt64,
    project_id UInt32,
    timestamp DateTime64(3),
    level LowCardinality(String),
    message String,
    duration_ms Float64,
    tags Array(String)
) ENGINE = MergeTree ORDER BY (project_id, timestamp, event_id)
"""


def arrow_batch(offset: int) -> pa.Table:
    start = datetime(2025, 1, 1)
    ids = range(offset, offset + ROWS)
    return pa.table(
        {
            "event_id": pa.array(ids, pa.uint64()),
            "project_id": pa.array([i % 7 for i in ids], pa.uint32()),
            "timestamp": pa.array(
                [start + timedelta(milliseconds=i) for i in ids], pa.timestamp("ms")
            ),
            "level": pa.array([("error", "warning", "info")[i % 3] for i in ids]),
            "message": pa.array(
                [f"TypeError: cannot read property 'x' of undefined (event {i})" for i in ids]
            ),
            "duration_ms": pa.array([i * 0.25 for i in ids], pa.float64()),
            "tags": pa.array([["browser:chrome", f"release:1.{i % 5}"] for i in ids]),
        }
    )


def insert_rates(client: Client, batches: list[pa.Table]) -> list[float]:
    rates = []
    for batch in batches:
        started = time.perf_counter()
        client.insert_arrow("bench_events", batch)
        rates.append(batch.num_rows / (time.perf_counter() - started))
    return rates


def query_latencies(queries: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    """Time the queries in turn, one of each per step, so that noise hits all alike."""
    for query in queries.values():  # warm up connections and caches
        for _ in range(20):
            query()
    times: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(count):
        for name, query in queries.items():
            started = time.perf_counter()
            query()
            times[name].append(time.perf_counter() - started)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=6, help="10k-row batches per round")
    parser.add_argument("--queries", type=int, default=300, help="SELECT 1 per round")
    args = parser.parse_args()

    batches = [arrow_batch(i * ROWS) for i in range(args.batches)]
    with tempfile.TemporaryDirectory(prefix="pulsetrace-bench-") as tmp:
        port = free_port()
        server = start_warehouse(Path(tmp) / "server", port)
        try:
            over_http = clickhouse_connect.get_client(
                host="127.0.0.1", port=port, database="pulsetrace"
            )
            sessionless = clickhouse_connect.get_client(
                host="127.0.0.1", port=port, database="pulsetrace", autogenerate_session_id=False
            )
            in_process = clickhouse_connect.get_client(dsn=f"chdb://{Path(tmp) / 'inproc'}")
            for client in (over_http, in_process):
                client.command(TABLE_DDL)
                client.insert_arrow("bench_events", batches[0])  # warm-up

            rates: dict[str, list[float]] = {"server": [], "in-process": []}
            latency: dict[str, list[float]] = {
                "server": [],
                "server, no session": [],
                "in-process": [],
            }
            for _ in range(args.rounds):
                rates["server"] += insert_rates(over_http, batches)
                rates["in-process"] += insert_rates(in_process, batches)
                measured = query_latencies(
                    {
                        "server": lambda: over_http.query("SELECT 1"),
                        "server, no session": lambda: sessionless.query("SELECT 1"),
                        "in-process": lambda: in_process.query("SELECT 1"),
                    },
                    args.queries,
                )
                for name, values in measured.items():
                    latency[name] += values
            counts = [
                client.command("SELECT count() FROM bench_events")
                for client in (over_http, in_process)
            ]
            over_http.close()
            sessionless.close()
            in_process.close()
        finally:
            server.stop()

    print(
        f"insert, {ROWS}-row Arrow batches ({len(rates['server'])} per side; rows landed {counts})"
    )
    for name, values in rates.items():
        print(f"  {name:<20} median {statistics.median(values):>12,.0f} rows/s")
    insert_ratio = statistics.median(rates["server"]) / statistics.median(rates["in-process"])
    print(f"  server / in-process  {insert_ratio:.2f}  (goal >= 0.50)")

    print(f"SELECT 1 latency ({len(latency['server'])} per side)")
    for name, values in latency.items():
        print(
            f"  {name:<20} median {statistics.median(values) * 1e3:6.2f} ms"
            f"   p95 {p95(values) * 1e3:6.2f} ms"
        )
    base = statistics.median(latency["in-process"])
    added = statistics.median(latency["server"]) - base
    added_sessionless = statistics.median(latency["server, no session"]) - base
    print(
        f"  added by the server  {added * 1e3:.2f} ms with a session, "
        f"{added_sessionless * 1e3:.2f} ms without  (goal < 2 ms)"
    )
    met = insert_ratio >= 0.5 and added < 0.002 and added_sessionless < 0.002
    print("goal met" if met else "GOAL MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
