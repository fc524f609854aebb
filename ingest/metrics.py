"""Prometheus metrics of the write path, served at `/metrics`.

Ingest runs as several worker processes, so metrics use prometheus_client's multiprocess mode
when PROMETHEUS_MULTIPROC_DIR is set (`pulsetrace up` sets it); the landing worker writes to
the same directory, so one scrape of the ingest sees landing figures too.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

EVENTS_ACCEPTED = Counter(
    "pulsetrace_ingest_events_accepted_total", "Events accepted", ["item_type"]
)
EVENTS_REJECTED = Counter(
    "pulsetrace_ingest_events_rejected_total", "Events rejected, by reason", ["reason"]
)
EVENTS_RATE_LIMITED = Counter(
    "pulsetrace_ingest_events_rate_limited_total", "Events refused by the rate limit"
)
ATTACHMENTS_STORED = Counter(
    "pulsetrace_ingest_attachments_stored_total",
    "Attachments stored: bytes in the blob store, a row in event_attachments",
)
ITEMS_COUNTED = Counter(
    "pulsetrace_ingest_items_counted_total",
    "Envelope items accepted and only counted (sessions, client reports, ...)",
    ["item_type"],
)
REQUEST_LATENCY = Histogram(
    "pulsetrace_ingest_request_seconds",
    "Ingest request latency",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LANDING_BATCH_ROWS = Histogram(
    "pulsetrace_landing_batch_rows",
    "Rows per insert into raw_events",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
LANDING_LAG = Histogram(
    "pulsetrace_landing_lag_seconds",
    "Time from acceptance to landing in raw_events (oldest row of each drain)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
QUEUE_DEPTH = Gauge(
    "pulsetrace_landing_queue_depth",
    "Landing-stream entries (one per request, up to 100 events each) not yet landed",
    multiprocess_mode="mostrecent",
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
