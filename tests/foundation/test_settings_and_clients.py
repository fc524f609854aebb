"""The settings object and the shared client factories."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from core.redis import broker_url, redis_client
from core.settings import Settings
from core.warehouse import available_migrations, migrate, redact, warehouse_client


def test_defaults_give_the_embedded_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "BLOB_URL", "SECRET_KEY",
                 "WAREHOUSE_PORT", "INGEST_PORT", "PUBLIC_INGEST_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env(tmp_path)
    assert settings.embedded_postgres and settings.embedded_redis and settings.embedded_warehouse
    assert settings.clickhouse_url == "http://default:@127.0.0.1:8123/pulsetrace"
    assert settings.blob_url == f"file://{tmp_path / 'blobs'}"
    assert settings.ingest_public_url == "http://127.0.0.1:8000"
    # Passwords of embedded services are generated per data dir, private, and stable.
    assert "127.0.0.1:54329/pulsetrace" in settings.database_url
    secret = tmp_path / "secrets" / "postgres_password"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.read_text() in settings.database_url
    assert Settings.from_env(tmp_path).secret_key == settings.secret_key
    assert len(settings.secret_key) >= 32


def test_external_urls_switch_embedded_services_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@db:5432/pt")
    monkeypatch.setenv("CLICKHOUSE_URL", "https://u:p@ch:8443/pt")
    settings = Settings.from_env(tmp_path)
    assert not settings.embedded_postgres and not settings.embedded_warehouse
    assert settings.embedded_redis
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/pt"
    assert settings.child_environment()["CLICKHOUSE_URL"] == "https://u:p@ch:8443/pt"
    assert redact("https://u:p@ch:8443/pt") == "https://u:***@ch:8443/pt"


def test_embedded_redis_is_reached_over_its_socket(redis_url: str) -> None:
    assert redis_url.startswith("unix://")
    assert redis_client(redis_url).ping()
    # As the landing worker's Celery reaches it.
    with Connection(broker_url(redis_url)) as connection:
        queue = connection.SimpleQueue(f"test-socket-{uuid.uuid4().hex}")
        queue.put({"n": 1})
        message = queue.get(timeout=10)
        message.ack()
        queue.close()
    assert message.payload == {"n": 1}
    password = redis_client(redis_url).connection_pool.connection_kwargs["password"]
    assert password not in redact(redis_url) and redact(redis_url).startswith("unix://:***@/")


def test_a_data_dir_too_deep_for_a_socket_reaches_redis_over_tcp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_PORT", "63799")
    deep = Settings.from_env(tmp_path / ("d" * 110))
    assert deep.redis_socket is None
    assert deep.redis_url.startswith("redis://:") and deep.redis_url.endswith("@127.0.0.1:63799/0")
    assert broker_url(deep.redis_url) == deep.redis_url
    assert Settings.from_env(tmp_path).redis_url.startswith("unix://")


def test_a_bad_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_PORT", "eighty")
    with pytest.raises(ValueError, match="INGEST_PORT must be an integer, got 'eighty'"):
        Settings.from_env()


def test_services_pick_which_processes_up_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cli.main import main
    from cli.stack import early_processes, health_of, product_processes

    everything = Settings.from_env(tmp_path)
    assert [s.name for s in early_processes(everything) + product_processes(everything)] == [
        "dagster", "ingest", "worker", "processing", "dashboard"]
    # An ingest node: what SDKs talk to, and the landing into the warehouse.
    monkeypatch.setenv("PULSETRACE_SERVICES", "ingest, worker")
    node = Settings.from_env(tmp_path)
    assert early_processes(node) == []
    assert [s.name for s in product_processes(node)] == ["ingest", "worker"]
    assert node.child_environment()["PULSETRACE_SERVICES"] == "ingest,worker"
    # `status` on such a node checks what it runs, not what it leaves to other nodes.
    assert [r.name for r in health_of(node)] == [
        "postgres", "redis", "warehouse", "ingest", "worker"]
    monkeypatch.setenv("PULSETRACE_SERVICES", "ingest,dashbord")
    with pytest.raises(ValueError, match="must name some of ingest, worker, processing, "
                                         "dashboard, dagster; got ingest, dashbord"):
        Settings.from_env(tmp_path)
    monkeypatch.delenv("PULSETRACE_SERVICES")
    assert main(["up", "--data-dir", str(tmp_path), "--services", "procesing"]) == 2
    assert "PULSETRACE_SERVICES" not in os.environ  # nothing leaks into later processes


def _child_uses_its_own_redis_client(
    url: str, parent_id: int, queue: multiprocessing.Queue
) -> None:
    client = redis_client(url)
    client.set("written-by-child", "yes")
    queue.put(id(client) != parent_id and client.get("written-by-child") == b"yes")


def test_redis_client_is_shared_in_a_process_and_fresh_after_fork(redis_url: str) -> None:
    parent = redis_client(redis_url)
    assert redis_client(redis_url) is parent
    assert parent.ping()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(
        target=_child_uses_its_own_redis_client, args=(redis_url, id(parent), queue)
    )
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True
    assert parent.get("written-by-child") == b"yes"


def test_warehouse_client_is_one_per_thread(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'wh'}"
    migrate(url)
    mine = warehouse_client(url)
    assert warehouse_client(url) is mine
    theirs: list[object] = []
    thread = threading.Thread(target=lambda: theirs.append(warehouse_client(url)))
    thread.start()
    thread.join()
    assert theirs and theirs[0] is not mine
    tables = {row[0] for row in mine.query("SHOW TABLES").result_rows}
    assert {"raw_events", "events", "transactions", "feedback", "schema_migrations"} <= tables
    assert migrate(url) == []  # idempotent: nothing left to apply
    applied = mine.query("SELECT version FROM schema_migrations ORDER BY version").result_rows
    assert [r[0] for r in applied] == [m.version for m in available_migrations()]


def test_stopping_a_service_whose_leader_died_stops_its_children(tmp_path: Path) -> None:
    """A worker killed outright must not leave its forked children running (Celery's beat)."""
    import signal
    import sys

    import psutil

    from core.embedded.process import ManagedProcess, ServiceSpec

    script = ("import subprocess, sys, time; "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
              "time.sleep(600)")
    process = ManagedProcess(ServiceSpec("parent", [sys.executable, "-c", script],
                                         health=lambda: True))
    process.start()
    assert process.proc is not None
    leader = psutil.Process(process.proc.pid)
    deadline = time.monotonic() + 10
    while not leader.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    [child] = leader.children()
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait(timeout=10)  # reaped: its pid no longer names a process
    process.stop(timeout=5)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
