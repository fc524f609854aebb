"""A running write path for the ingest and processing tests: PostgreSQL, Redis and the
warehouse (from tests/conftest.py), the ingest server (granian) and the landing worker
(Celery), started exactly as `pulsetrace up` starts them, plus a bootstrapped project."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from sqlalchemy import update

from cli.bootstrap import BootstrapResult, bootstrap
from cli.stack import ingest_service, landing_worker_service, start_service
from core import db
from core.embedded.process import ManagedProcess
from core.models import ProjectKey
from core.settings import Settings
from core.warehouse import connect


@dataclass
class IngestStack:
    settings: Settings
    project: BootstrapResult
    warehouse: Client
    worker: ManagedProcess
    ingest: ManagedProcess

    @property
    def url(self) -> str:
        return self.settings.ingest_public_url

    def endpoint(self, kind: str, project_id: int | None = None) -> str:
        return f"{self.url}/api/{project_id or self.project.project_id}/{kind}/"

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {
            "X-Sentry-Auth": f"Sentry sentry_key={key or self.project.public_key}, "
            "sentry_version=7, sentry_client=pulsetrace-tests/1.0"
        }

    def landed(self, where: str, parameters: dict[str, Any], expected: int,
               timeout: float = 30.0) -> list[tuple[Any, ...]]:
        """Rows of raw_events (deduplicated) matching `where`, once there are `expected`."""
        query = f"SELECT * FROM raw_events FINAL WHERE {where}"
        deadline = time.monotonic() + timeout
        rows: list[tuple[Any, ...]] = []
        while time.monotonic() < deadline:
            rows = self.warehouse.query(query, parameters=parameters).result_rows
            if len(rows) >= expected:
                return rows
            time.sleep(0.2)
        raise AssertionError(f"{len(rows)} of {expected} rows landed within {timeout} s")

    def columns(self) -> list[str]:
        """The columns of `landed`'s rows (`*`: no MATERIALIZED ones)."""
        return list(self.warehouse.query("SELECT * FROM raw_events LIMIT 0").column_names)


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that takes connections and never answers (a paused Redis, a half-open
    connection): the kernel completes the handshakes, nothing ever reads. Yields its
    redis:// URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


class CuttableProxy:
    """A TCP proxy to a real server (e.g. PostgreSQL) that a test can cut: cut() drops every
    connection and closes new ones at once, as a server that went down; restore() forwards
    again. Other tests keep using the server directly."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open = True
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.listener.close()
        self.cut()


def new_project(settings: Settings) -> BootstrapResult:
    return bootstrap(
        settings, "Ingest Tests", f"proj-{uuid.uuid4().hex[:8]}", "ingest@tests.local",
        "a long test password",
    )


@pytest.fixture(scope="session")
def ingest_stack(
    stack_settings: Settings, postgres_url: str, redis_url: str, warehouse_url: str
) -> Iterator[IngestStack]:
    db.upgrade(postgres_url)
    project = new_project(stack_settings)
    ingest = start_service(ingest_service(stack_settings), stack_settings)
    worker = start_service(landing_worker_service(stack_settings), stack_settings)
    client = connect(warehouse_url)
    stack = IngestStack(stack_settings, project, client, worker, ingest)
    try:
        yield stack
    finally:
        client.close()
        stack.worker.stop()  # the current one: a test may have replaced the worker
        ingest.stop()


@pytest.fixture
def fresh_project(ingest_stack: IngestStack) -> BootstrapResult:
    """A project of its own, for tests that change keys or limits."""
    return new_project(ingest_stack.settings)


@pytest.fixture
def set_key(ingest_stack: IngestStack) -> Callable[..., None]:
    engine = db.make_engine(ingest_stack.settings.database_url)

    def change(public_key: str, **values: Any) -> None:
        with db.system_session(engine) as session, session.begin():
            session.execute(
                update(ProjectKey).where(ProjectKey.public_key == public_key).values(**values)
            )

    return change

