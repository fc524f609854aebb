"""The micro-batch driver, started by `pulsetrace up` as `python -m orchestration`.

Every second it looks for raw events landed since the cursor and, when there are some, runs
the `process_raw_events` job in this long-lived process with the persistent Dagster instance
(DAGSTER_HOME), so the Dagster UI shows every run and materialization. Sensors would add
5-12 s of latency (the daemon loops every 5 s and each run starts a process; see
ARCHITECTURE.md); this loop processes a batch within about a second of landing.

It also keeps the dbt marts (transforms/) fresh: after batches were processed, a thread runs
the `refresh_marts` job (a dbt build, incremental) at most every MARTS_REFRESH_SECONDS, so the
dashboards lag the events by about that much. The builds run in a child process at a lower CPU
priority (`python -m orchestration marts-builder`, nice 10): in this process's threads their
seconds of Python held the GIL and a core from the micro-batches, and the delay from ingest to
issue doubled while one ran. The child serves build after build: loading Dagster and the dbt
project took a new process per build ~5.7 s of CPU, more than the build itself (4.6), every
MARTS_REFRESH_SECONDS under steady traffic. It exits after BUILDER_IDLE_SECONDS without a
build, so an idle stack does not carry its memory. A build starts only when a poll found
nothing new to process, so builds fall in the idle second between windows of steady traffic,
and a backlog (a burst, or events landed while processing was down) is worked through first,
for at most MARTS_DEFER_SECONDS: a build took 4.6 CPU-seconds in the bench, as much as
processing ~15,000 events.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from core import heartbeat
from core.db import make_engine
from core.inflight import landing_horizon
from core.redis import redis_client
from core.settings import Settings, get_settings
from core.warehouse import warehouse_client
from orchestration.definitions import REFRESH_MARTS, defs
from orchestration.processing import next_window, read_cursor

log = logging.getLogger("pulsetrace.runner")

KEEP_RUNS = 500  # a run a second adds up: older finished runs are deleted
MARTS_DEFER_SECONDS = 300.0
MARTS_NICENESS = 10
BUILDER_IDLE_SECONDS = 300.0
BUILD_REQUEST, BUILD_PASSED, BUILD_FAILED = "build\n", "passed\n", "failed\n"


class MartsBuilder:
    """The child process that runs marts builds (see the module's note): a request is a line
    on its stdin, the answer a line on its stdout. Started on the first build, started again
    after it died; closing its stdin ends it."""

    COMMAND = (sys.executable, "-m", "orchestration", "marts-builder")

    def __init__(self, command: tuple[str, ...] = COMMAND) -> None:
        self.command = command
        self.process: subprocess.Popen[str] | None = None
        self.last_used = float("-inf")

    def build(self) -> bool:
        """One build; True if it passed. False too if the child died (it is started anew for
        the next build)."""
        self.last_used = time.monotonic()
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                preexec_fn=lambda: os.nice(MARTS_NICENESS),
            )
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(BUILD_REQUEST)
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        except OSError:  # it died before reading the request
            answer = ""
        if not answer:
            self.close()
        self.last_used = time.monotonic()
        return answer == BUILD_PASSED

    def idle_for(self) -> float:
        return time.monotonic() - self.last_used if self.process is not None else 0.0

    def close(self, timeout: float = 30.0) -> None:
        """End the child: at once when idle; a build in flight ends first (within timeout)."""
        process, self.process = self.process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class MartsRefresher:
    """Runs `refresh_marts` from its own thread when told that processed data changed, at most
    every `interval` seconds; a failed build is retried later, waiting longer each time."""

    def __init__(self, interval: float, defer_seconds: float = MARTS_DEFER_SECONDS,
                 builder_idle_seconds: float = BUILDER_IDLE_SECONDS) -> None:
        self.interval = interval
        self.defer_seconds = defer_seconds
        self.builder = MartsBuilder()
        self.builder_idle_seconds = builder_idle_seconds
        self.catching_up = threading.Event()  # set by the runner while it has a window to run
        self.changed = threading.Event()
        # Events may have been processed while the stack was down: build once at start.
        self.changed.set()
        self.stopping = threading.Event()
        self.failures = 0
        self.last_started = float("-inf")
        self.thread = threading.Thread(target=self.run, name="marts-refresh", daemon=True)

    def data_changed(self) -> None:
        self.changed.set()

    def stop(self) -> None:
        self.stopping.set()

    def refresh(self) -> bool:
        """One build in the builder process (see the module's note); its run is recorded in
        the same Dagster instance, so the Dagster UI shows it."""
        return self.builder.build()

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.builder.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            if not self.changed.wait(timeout=0.5):
                if self.builder.idle_for() > self.builder_idle_seconds:
                    self.builder.close()
                continue
            backoff = self.interval * 2 ** min(self.failures, 4)
            wait = self.last_started + backoff - time.monotonic()
            if wait > 0:
                self.stopping.wait(wait)
                continue
            if (self.catching_up.is_set()
                    and time.monotonic() - self.last_started < self.defer_seconds):
                self.stopping.wait(0.5)
                continue
            self.changed.clear()
            self.last_started = time.monotonic()
            try:
                ok = self.refresh()
            except Exception:  # noqa: BLE001 - logged; retried after the backoff
                log.exception("refreshing the marts failed")
                ok = False
            if ok:
                self.failures = 0
            else:
                self.failures += 1
                self.changed.set()  # the new data is still not in the marts
                log.warning("refreshing the marts failed; retrying in %.0f s",
                            self.interval * 2 ** min(self.failures, 4))


def marts_refresher(settings: Settings) -> MartsRefresher | None:
    """None when the dbt project did not parse (the definitions then leave it out)."""
    if not any(getattr(job, "name", None) == REFRESH_MARTS for job in defs.jobs or ()):
        log.error("no %s job: the dbt project is left out, the marts will not refresh",
                  REFRESH_MARTS)
        return None
    return MartsRefresher(settings.marts_refresh_seconds)


FAILURES_BEFORE_UNHEALTHY = 3  # attempts of the same window, a few seconds of retrying
# Landing times are the warehouse's clock, the landing horizon Redis's: room for both.
IN_FLIGHT_MARGIN = timedelta(milliseconds=250)


class Runner:
    def __init__(self, settings: Settings, poll_seconds: float = 1.0) -> None:
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.instance = DagsterInstance.get()
        self.job = defs.resolve_job_def("process_raw_events")
        self.engine = make_engine(settings.database_url)
        self.stopping = False
        self.failures = 0
        self.marts = marts_refresher(settings)
        self.redis = redis_client(settings.redis_url)

    def stop(self, *_: object) -> None:
        self.stopping = True
        if self.marts is not None:
            self.marts.stop()

    def step(self) -> bool:
        """Run one batch if there is one; True when it did."""
        window = next_window(warehouse_client(self.settings.clickhouse_url),
                             read_cursor(self.engine),
                             before=landing_horizon(self.redis) - IN_FLIGHT_MARGIN)
        if self.marts is not None:
            # Set before the window runs, so that the build its data_changed() asks for
            # waits for the next poll that finds nothing new.
            if window is not None:
                self.marts.catching_up.set()
            else:
                self.marts.catching_up.clear()
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
        if self.marts is not None:
            self.marts.data_changed()
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
        if self.marts is not None:
            self.marts.thread.start()
        steps = 0
        while not self.stopping:
            # A runner that keeps failing is not healthy: after a few failed attempts its
            # heartbeat lapses, so `pulsetrace status` says so while the window is retried.
            if self.failures < FAILURES_BEFORE_UNHEALTHY:
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


def build_marts(instance: DagsterInstance) -> bool:
    """One marts build, recorded in `instance`; True if it passed."""
    result = defs.resolve_job_def(REFRESH_MARTS).execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"pulsetrace/trigger": "events processed"},
    )
    return result.success


def serve_marts_builds() -> int:
    """`python -m orchestration marts-builder`: the runner's MartsBuilder child. A build per
    request line on stdin, each answered on stdout; ends when stdin closes."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    # What a build prints (dbt, Dagster) goes to the log with stderr, not among the answers.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    instance = DagsterInstance.get()
    for _ in sys.stdin:
        try:
            passed = build_marts(instance)
        except Exception:  # noqa: BLE001 - answered as a failed build; the next may pass
            log.exception("the marts build failed")
            passed = False
        answers.write(BUILD_PASSED if passed else BUILD_FAILED)
    return 0


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runner = Runner(get_settings())
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    log.info("processing raw events as they land")
    runner.run()
    if runner.marts is not None and runner.marts.thread.is_alive():
        # Let a build in flight end (dbt got the same signal) so its run is not left open.
        runner.marts.thread.join(timeout=30)


if __name__ == "__main__":
    main()


