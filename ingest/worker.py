"""The Celery app that lands accepted events in ClickHouse.

Beat runs `land_events` twice a second; each run drains the landing stream in batches of up
to 20,000 rows per insert. If the warehouse is down, the batch stays pending in Redis and the
worker backs off (0.5 s doubling to 30 s) before it tries again, until an insert succeeds.
Start it with
`celery -A ingest.worker worker --beat --concurrency 1` (`pulsetrace up` does).
"""

from __future__ import annotations

import time

from celery import Celery
from celery.signals import worker_process_init
from celery.utils.log import get_task_logger

from core import heartbeat
from core.redis import broker_url, redis_client
from core.settings import get_settings
from core.warehouse import warehouse_client
from ingest import landing, metrics

settings = get_settings()
celery_app = Celery("pulsetrace", broker=broker_url(settings.redis_url))
celery_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    beat_schedule={"land-events": {"task": "ingest.land_events", "schedule": 0.5}},
    beat_schedule_filename=str(settings.data_dir / "run" / "celerybeat-schedule"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # A drain that could not finish must not pile up behind itself.
    task_default_expires=5,
)
app = celery_app  # `celery -A ingest.worker` finds it by this name

_consumer = landing.consumer_name()
logger = get_task_logger(__name__)


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    global _consumer
    _consumer = landing.consumer_name()  # each pool process is its own consumer


class Backoff:
    """After a failed landing, wait before the next attempt: 0.5 s, doubling up to 30 s."""

    def __init__(self, first: float = 0.5, longest: float = 30.0) -> None:
        self.first, self.longest = first, longest
        self.delay = 0.0
        self.next_attempt = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.next_attempt

    def failed(self) -> float:
        self.delay = min(self.longest, self.delay * 2 if self.delay else self.first)
        self.next_attempt = time.monotonic() + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0
        self.next_attempt = 0.0


_backoff = Backoff()


@celery_app.task(name="ingest.land_events", ignore_result=True)
def land_events() -> int:
    redis = redis_client(settings.redis_url)
    heartbeat.beat(redis, heartbeat.LANDING)
    if not _backoff.ready():
        return 0
    try:
        result = landing.drain(redis, warehouse_client(settings.clickhouse_url), _consumer,
                               max_bytes=min(landing.MAX_INSERT_BYTES,
                                             settings.warehouse_max_body_bytes // 2))
    except Exception as exc:  # noqa: BLE001 - the batch stays pending; we try again later
        delay = _backoff.failed()
        logger.warning("landing failed (%s); retrying in %.1f s", exc, delay)
        return 0
    _backoff.succeeded()
    if result.rows:
        metrics.LANDING_BATCH_ROWS.observe(result.rows / max(result.batches, 1))
        if result.oldest_received_at is not None:
            metrics.LANDING_LAG.observe(time.time() - result.oldest_received_at)
    metrics.QUEUE_DEPTH.set(landing.backlog(redis))
    return result.rows
