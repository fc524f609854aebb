"""`pulsetrace up` and `pulsetrace status`: the whole stack on one machine.

`up` holds a lock in the data dir for its lifetime (a second `up` on the same dir is refused),
starts the embedded services that no URL setting replaces, applies migrations, starts the
PulseTrace processes, writes `run/stack.json` so `status` and `bootstrap` find this stack,
streams every log with a prefix, and on SIGINT/SIGTERM stops everything in reverse order.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core import db, heartbeat, warehouse
from core.embedded import postgres, redis, warehouse_service
from core.embedded.process import (
    ManagedProcess,
    ServiceFailed,
    ServiceSpec,
    python_module_argv,
    start_healthy,
)
from core.redis import redis_client
from core.settings import Settings

STACK_FILE = "run/stack.json"
LOCK_FILE = "run/up.lock"


class AlreadyRunning(RuntimeError):
    pass


@contextmanager
def data_dir_lock(settings: Settings) -> Iterator[None]:
    path = settings.data_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"PulseTrace is already running on data dir {settings.data_dir} (pid {owner}); "
            f"stop it first, or use another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def infrastructure(settings: Settings) -> list[ServiceSpec]:
    """Embedded services, each skipped when its URL setting points at an external server."""
    services = []
    if settings.embedded_postgres:
        services.append(postgres.service(settings))
    if settings.embedded_redis:
        services.append(redis.service(settings))
    if settings.embedded_warehouse:
        services.append(warehouse_service.service(settings))
    return services


def start_service(spec: ServiceSpec, settings: Settings) -> ManagedProcess:
    """Start a service as `pulsetrace up` does: with the stack's environment, until healthy."""
    spec.env = {**settings.child_environment(), **spec.env}
    return start_healthy(spec)


def granian_argv(settings: Settings, port: int, workers: int, app: str,
                 *extra: str) -> list[str]:
    """granian: the fastest WSGI server measured here (see ARCHITECTURE.md)."""
    return [
        str(Path(sys.executable).parent / "granian"),
        "--interface", "wsgi",
        "--host", settings.host,
        "--port", str(port),
        "--workers", str(workers),
        "--blocking-threads", "4",
        "--runtime-threads", "1",
        *extra,
        "--no-ws",
        "--log-level", "warning",
        app,
    ]


def ingest_service(settings: Settings) -> ServiceSpec:
    url = f"http://{settings.host}:{settings.ingest_port}"
    return ServiceSpec(
        name="ingest",
        argv=granian_argv(settings, settings.ingest_port, 2, "ingest.wsgi:app", "--http", "1"),
        health=lambda: http_ok(f"{url}/health"),
        url=url,
        env={"PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir(settings))},
        log_file=settings.data_dir / "logs" / "ingest.log",
        prepare=lambda: _fresh_dir(prometheus_dir(settings)),
    )


def dashboard_service(settings: Settings) -> ServiceSpec:
    """The management API and browser sign-in (the Dash app joins this server)."""
    url = f"http://{settings.host}:{settings.dashboard_port}"
    return ServiceSpec(
        name="dashboard",
        argv=granian_argv(settings, settings.dashboard_port, 1, "dashboards.wsgi:app"),
        health=lambda: http_ok(f"{url}/health"),
        url=url,
        log_file=settings.data_dir / "logs" / "dashboard.log",
    )


def landing_worker_service(settings: Settings) -> ServiceSpec:
    argv = python_module_argv(
        "celery", "-A", "ingest.worker", "worker", "--beat", "--pool", "solo",
        "--hostname", f"landing-{os.getpid()}@%h", "--loglevel", "WARNING", "--without-gossip",
        "--without-mingle",
    )
    return ServiceSpec(
        name="worker",
        argv=argv,
        health=lambda: heartbeat.alive(redis_client(settings.redis_url), heartbeat.LANDING),
        url="(Celery on Redis; lands events in raw_events)",
        env={"PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir(settings))},
        log_file=settings.data_dir / "logs" / "worker.log",
        # A heartbeat left by a previous run must not pass for this worker's.
        prepare=lambda: heartbeat.forget(redis_client(settings.redis_url), heartbeat.LANDING),
    )


def dagster_yaml(home: Path) -> str:
    """The Dagster instance's configuration: where it keeps run events, and no capture of
    the steps' stdout/stderr.

    Dagster's defaults cost the runner ~320 ms of CPU per micro-batch run, whatever its size,
    a third of a core at one run a second: an SQLite database created for every run (its
    tables, an Alembic stamp), a connection opened per event, and two `tail` processes and
    two Python watchers spawned per run to mirror the steps' output. One event log database
    for all runs and no output capture cost ~160 ms. The steps log through Python logging,
    which Dagster records in the event log, so the UI still shows every run's logs; nothing
    of ours writes to stdout. (dagster-postgres measured worse: ~430 ms.)

    Only storage keys on purpose, no settings (telemetry, python_logs, ...): with any
    setting, Dagster reconfigures Python logging (logging.config.dictConfig) at the start of
    every run, and the runner's threads deadlocked on the logging locks. Telemetry is kept
    from leaving the machine by DAGSTER_DISABLE_TELEMETRY (Settings.child_environment).
    """
    # JSON strings are YAML strings: the path is written whatever it holds.
    return (
        "# Written by pulsetrace up at every start: see cli/stack.py.\n"
        "event_log_storage:\n"
        "  module: dagster._core.storage.event_log\n"
        "  class: ConsolidatedSqliteEventLogStorage\n"
        "  config:\n"
        f"    base_dir: {json.dumps(str(home / 'event_log'))}\n"
        "compute_logs:\n"
        "  module: dagster._core.storage.noop_compute_log_manager\n"
        "  class: NoOpComputeLogManager\n"
    )


def prepare_dagster_home(settings: Settings) -> None:
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml(home))


def processing_service(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="processing",
        argv=python_module_argv("orchestration"),
        health=lambda: heartbeat.alive(redis_client(settings.redis_url), heartbeat.PROCESSING),
        url="(Dagster micro-batches: raw_events -> events, issues)",
        log_file=settings.data_dir / "logs" / "processing.log",
        prepare=lambda: (prepare_dagster_home(settings),
                         heartbeat.forget(redis_client(settings.redis_url), heartbeat.PROCESSING)),
        startup_timeout=120.0,
    )


def dagster_ui_service(settings: Settings) -> ServiceSpec:
    url = f"http://{settings.host}:{settings.dagster_port}"
    return ServiceSpec(
        name="dagster",
        argv=[
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-m", "orchestration.definitions",
            "-h", settings.host, "-p", str(settings.dagster_port),
        ],
        health=lambda: http_ok(f"{url}/server_info"),
        url=url,
        log_file=settings.data_dir / "logs" / "dagster.log",
        prepare=lambda: prepare_dagster_home(settings),
        startup_timeout=120.0,
    )


def early_processes(settings: Settings) -> list[ServiceSpec]:
    """Slow to boot and needing no other service: started with the infrastructure. The Dagster
    UI also creates the Dagster instance store, which the runner must not create at the same
    time (both would on a fresh data dir)."""
    return [dagster_ui_service(settings)] if "dagster" in settings.services else []


def product_processes(settings: Settings) -> list[ServiceSpec]:
    """PulseTrace's own processes that settings.services selects, started once migrations
    are applied."""
    makers = {"ingest": ingest_service, "worker": landing_worker_service,
              "processing": processing_service, "dashboard": dashboard_service}
    return [make(settings) for name, make in makers.items() if name in settings.services]


def prometheus_dir(settings: Settings) -> Path:
    return settings.data_dir / "run" / "prometheus"


def _fresh_dir(path: Path) -> None:
    """Prometheus multiprocess files of a previous run would be counted again."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def apply_migrations(settings: Settings) -> None:
    db.upgrade(settings.database_url)
    warehouse.migrate(settings.clickhouse_url)


@dataclass
class HealthReport:
    name: str
    url: str
    healthy: bool
    detail: str = ""


def check(name: str, url: str, probe: Callable[[], bool]) -> HealthReport:
    try:
        return HealthReport(name, url, bool(probe()))
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", reported as text
        return HealthReport(name, url, False, f"{type(exc).__name__}: {exc}")


class Stack:
    def __init__(self, settings: Settings, out: IO[str] = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.running: list[ManagedProcess] = []
        self._stop_requested = False

    def say(self, text: str) -> None:
        self.out.write(f"[pulsetrace] {text}\n")
        self.out.flush()

    def _start_all(self, specs: list[ServiceSpec]) -> None:
        """Start a group together (they do not depend on each other), then wait for each."""
        group = []
        for spec in specs:
            spec.env = {**self.settings.child_environment(), **spec.env}
            process = ManagedProcess(spec, self.out)
            process.start()
            self.running.append(process)
            group.append(process)
        for process in group:
            process.wait_healthy()
            self.say(f"{process.spec.name} healthy (pid {process.pid})")

    def start(self) -> None:
        started = time.monotonic()
        self._start_all(infrastructure(self.settings) + early_processes(self.settings))
        apply_migrations(self.settings)
        self.say("migrations applied (PostgreSQL and warehouse)")
        self._start_all(product_processes(self.settings))
        self._write_stack_file()
        self.say(f"healthy in {time.monotonic() - started:.1f} s")

    def _write_stack_file(self) -> None:
        path = self.settings.data_dir / STACK_FILE
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "environment": self.settings.child_environment(),
            "services": {
                p.spec.name: {"pid": p.pid, "url": p.spec.url} for p in self.running
            },
        }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)
        tmp.replace(path)

    def urls(self) -> dict[str, str]:
        return {p.spec.name: p.spec.url for p in self.running}

    def request_stop(self, *_: Any) -> None:
        self._stop_requested = True

    def wait(self) -> int:
        """Block until asked to stop (0) or until a process dies on its own (1)."""
        while not self._stop_requested:
            for process in self.running:
                if not process.running():
                    self.say(f"{process.spec.name} exited unexpectedly; stopping the stack")
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        for process in reversed(self.running):
            if process.running():
                self.say(f"stopping {process.spec.name}")
            process.stop()
        self.running.clear()
        (self.settings.data_dir / STACK_FILE).unlink(missing_ok=True)


def run_up(settings: Settings, demo: bool, out: IO[str] = sys.stdout) -> int:
    from cli.bootstrap import bootstrap_demo  # the demo needs the stack, not the other way round

    try:
        with data_dir_lock(settings):
            stack = Stack(settings, out)
            signal.signal(signal.SIGTERM, stack.request_stop)
            signal.signal(signal.SIGINT, stack.request_stop)
            try:
                stack.start()
                if demo:
                    stack.say(bootstrap_demo(settings))
                for name, url in stack.urls().items():
                    stack.say(f"{name:<10} {url}")
                stack.say("running; press Ctrl-C to stop")
                code = stack.wait()
            except ServiceFailed as exc:
                stack.say(f"could not start: {exc}")
                code = 1
            finally:
                stack.stop()
                stack.say("stopped")
            return code
    except AlreadyRunning as exc:
        out.write(f"{exc}\n")
        return 1


def load_stack_environment(data_dir: Path) -> dict[str, str]:
    """The environment that the `up` on data_dir gave its processes."""
    path = data_dir / STACK_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no PulseTrace is running on data dir {data_dir}; start it with `pulsetrace up`"
        )
    return json.loads(path.read_text())["environment"]


def health_of(settings: Settings) -> list[HealthReport]:
    reports = [
        check("postgres", _redacted_db(settings), lambda: _database_ok(settings)),
        check("redis", warehouse.redact(settings.redis_url), lambda: _redis_ok(settings)),
        check(
            "warehouse", warehouse.redact(settings.clickhouse_url), lambda: _warehouse_ok(settings)
        ),
    ]
    reports += [
        check(spec.name, spec.url, spec.health)
        for spec in early_processes(settings) + product_processes(settings)
    ]
    return reports


def _redacted_db(settings: Settings) -> str:
    return warehouse.redact(settings.database_url.replace("+psycopg", ""))


def _database_ok(settings: Settings) -> bool:
    import sqlalchemy

    engine = db.make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def _warehouse_ok(settings: Settings) -> bool:
    client = warehouse.connect(settings.clickhouse_url)
    try:
        return client.command("SELECT 1") == 1
    finally:
        client.close()


def _redis_ok(settings: Settings) -> bool:
    return bool(redis_client(settings.redis_url).ping())
