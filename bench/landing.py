"""Landing: the CPU the landing worker and the warehouse spend per event, by insert size.

    .venv/bin/python bench/landing.py [--rows 40000] [--sizes 1500,5000,20000] [--runs 3]

Starts Redis and the warehouse in a temporary data dir. Per run and insert size (the sizes
interleaved, so a change in the shared machine's speed touches each of them alike): queues
`--rows` events of about 2 KB through the ingest's landing queue in requests of 100, then drains
them into `raw_events` with `ingest.landing.drain` in batches of that size, and measures the CPU
of this process (the worker's share) and of the warehouse process, during the drain and a few
seconds after it (the merges the inserts cause). Prints medians in µs per event. This is what
chose the drain's batch size: the warehouse's cost per insert (a part to write, then to merge)
is large, so it costs far less per event in large inserts. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Run as `python bench/landing.py`, this folder comes first on sys.path, where bench/ingest.py
# would hide the ingest package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

from cli.stack import start_service  # noqa: E402
from core.embedded import redis, warehouse_service  # noqa: E402
from core.embedded.process import ManagedProcess, free_port  # noqa: E402
from core.redis import redis_client  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.warehouse import connect, migrate  # noqa: E402
from ingest.landing import LandingRow, drain, encode_row  # noqa: E402
from ingest.queue import LandingQueue  # noqa: E402

SETTLE_SECONDS = 3.0  # merges of the inserts' parts go on after the drain


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of the process, to the nanosecond (scheduler statistics)."""
    tasks = Path(f"/proc/{pid}/task")
    return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks.iterdir()) / 1e9


def an_event() -> bytes:
    """About 2 KB of a browser error event, with ids that differ every time."""
    frames = [{"filename": f"https://shop.example.com/static/js/chunk-{n}.js",
               "function": f"handler{n}", "lineno": 100 + n, "colno": 17, "in_app": True}
              for n in range(8)]
    return json.dumps({
        "event_id": uuid.uuid4().hex, "platform": "javascript", "level": "error",
        "release": "shop@1.4.2", "environment": "production",
        "exception": {"values": [{"type": "TypeError", "value": "Cannot read properties of "
                                  f"undefined (reading 'id') at order {uuid.uuid4().hex[:8]}",
                                  "stacktrace": {"frames": frames}}]},
        "breadcrumbs": {"values": [{"category": "ui.click", "message": f"button#buy-{n}",
                                    "timestamp": time.time()} for n in range(5)]},
        "user": {"id": uuid.uuid4().hex[:12], "ip_address": "{{auto}}"},
        "tags": {"page": "/cart", "locale": "en-GB"},
        "contexts": {"browser": {"name": "Chrome", "version": "131.0"},
                     "trace": {"trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16]}},
    }).encode()


def queue_events(queue: LandingQueue, rows: int) -> None:
    for start in range(0, rows, 100):
        events = []
        for _ in range(min(100, rows - start)):
            event_id = uuid.uuid4().hex
            events.append((event_id, encode_row(LandingRow(
                1, 1, event_id, "event", time.time(), "127.0.0.1", "Mozilla/5.0", "Chrome",
                "131.0", "Windows", "10", "Other", "sentry.javascript.browser", "8.40.0",
                an_event()))))
        queue.enqueue(1, 1, 10**9, events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--sizes", default="1500,5000,20000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pulsetrace-bench-landing-") as tmp:
        settings = Settings(data_dir=Path(tmp), redis_port=free_port(),
                            warehouse_port=free_port())
        running: list[ManagedProcess] = []
        try:
            for spec in (redis.service(settings), warehouse_service.service(settings)):
                running.append(start_service(spec, settings))
            migrate(settings.clickhouse_url)
            warehouse_pid = running[1].pid
            assert warehouse_pid is not None
            client = redis_client(settings.redis_url)
            warehouse = connect(settings.clickhouse_url)
            figures: dict[int, list[tuple[float, float, float]]] = {size: [] for size in sizes}
            for run in range(args.runs):
                for size in sizes:
                    stream = f"bench:landing:{size}:{run}"
                    queue_events(LandingQueue(client, 60.0, stream=stream), args.rows)
                    own, theirs = time.process_time(), cpu_seconds(warehouse_pid)
                    landed = 0
                    while rows := drain(client, warehouse, "bench", batch_size=size,
                                        max_seconds=600, stream=stream).rows:
                        landed += rows
                    own, during = time.process_time() - own, cpu_seconds(warehouse_pid) - theirs
                    time.sleep(SETTLE_SECONDS)
                    after = cpu_seconds(warehouse_pid) - theirs
                    client.delete(stream)
                    per_event = [value / landed * 1e6 for value in (own, during, after)]
                    figures[size].append((per_event[0], per_event[1], per_event[2]))
                    print(f"run {run + 1}, inserts of up to {size:,} rows: {landed:,} events; "
                          f"worker {per_event[0]:.1f}, warehouse {per_event[1]:.1f} "
                          f"(+ merges {per_event[2]:.1f}) µs per event", flush=True)
            print(f"\nmedians of {args.runs} runs, µs of CPU per event landed "
                  f"(load average {os.getloadavg()[0]:.1f})")
            print(f"{'insert rows':>12} {'worker':>8} {'warehouse':>10} {'+ merges':>9}")
            for size, values in figures.items():
                medians = [statistics.median(v[i] for v in values) for i in range(3)]
                print(f"{size:>12,} {medians[0]:>8.1f} {medians[1]:>10.1f} {medians[2]:>9.1f}")
        finally:
            for process in reversed(running):
                process.stop()


if __name__ == "__main__":
    main()
