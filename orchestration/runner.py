"""The micro-batch driver: `python -m orchestration.runner` (started by `pulsetrace up`).

Every second it looks for raw events landed since the cursor and, when there are some, runs
the `process_raw_events` job in this long-lived process with the persistent Dagster instance
(DAGSTER_HOME), so the Dagster UI shows every run and materialization. Sensors would add
5-12 s of latency (the daemon loops every 5 s and each run starts a process; see
ARCHITECTURE.md); this loop processes a batch within about a second of landing.
"""

from __future__ import annotations

import logging
import signal
import time

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from core import heartbeat
from core.db import make_engine
from core.redis import redis_client
from core.settings import Settings, get_settings
from core.warehouse import warehouse_client
from orchestration.definitions import defs
from orchestration.processing import next_window, read_cursor

log = logging.getLogger("pulsetrace.runner")

KEEP_RUNS = 500  # a run a second adds up: older finished runs are deleted


class Runner:
    def __init__(self, settings: Settings, poll_seconds: float = 1.0) -> None:
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.instance = DagsterInstance.get()
        self.job = defs.resolve_job_def("process_raw_events")
        self.engine = make_engine(settings.database_url)
        self.stopping = False
        self.failures = 0

    def stop(self, *_: object) -> None:
        self.stopping = True

    def step(self) -> bool:
        """Run one batch if there is one; True when it did."""
        window = next_window(warehouse_client(self.settings.clickhouse_url),
                             read_cursor(self.engine))
        if window is None:
            return False
        result = self.job.execute_in_process(
            run_config={"ops": {"processed_batch": {"config": {
                "after": window.after.isoformat(), "upto": window.upto.isoformat()}}}},
            instance=self.instance,
            raise_on_error=False,
            tags={"pulsetrace/window": f"{window.after.isoformat()}..{window.upto.isoformat()}"},
        )
        if not result.success:
            raise RuntimeError(f"run {result.run_id} failed; the window will be retried")
        return True

    def prune_runs(self) -> None:
        finished = self.instance.get_run_records(
            filters=RunsFilter(statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]),
            limit=200, ascending=True,
        )
        total = self.instance.get_runs_count()
        for record in finished[: max(0, total - KEEP_RUNS)]:
            self.instance.delete_run(record.dagster_run.run_id)

    def run(self) -> None:
        redis = redis_client(self.settings.redis_url)
        steps = 0
        while not self.stopping:
            heartbeat.beat(redis, heartbeat.PROCESSING)
            try:
                worked = self.step()
                self.failures = 0
            except Exception as exc:  # noqa: BLE001 - logged; the same window is retried
                self.failures += 1
                delay = min(30.0, 0.5 * 2 ** self.failures)
                log.warning("processing failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                continue
            steps += 1
            if steps % 100 == 0:
                self.prune_runs()
            if not worked:
                time.sleep(self.poll_seconds)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runner = Runner(get_settings())
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    log.info("processing raw events as they land")
    runner.run()


if __name__ == "__main__":
    main()


