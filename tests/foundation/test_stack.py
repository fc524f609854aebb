"""`pulsetrace up`, `status` and `bootstrap` as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from core.embedded.process import free_port

PULSETRACE = str(Path(sys.executable).parent / "pulsetrace")


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    data_dir: Path
    env: dict[str, str]
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PULSETRACE, *args, "--data-dir", str(self.data_dir)],
            env=self.env, capture_output=True, text=True, timeout=120,
        )

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


def stack_environment() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "BLOB_URL", "SECRET_KEY")
    }
    for name in ("POSTGRES_PORT", "REDIS_PORT", "WAREHOUSE_PORT", "INGEST_PORT",
                 "DASHBOARD_PORT", "DAGSTER_PORT"):
        env[name] = str(free_port())
    return env


def wait_for_line(log: Path, text: str, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"up exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("stack")
    log = data_dir.parent / f"{data_dir.name}-up.log"
    env = stack_environment()
    with log.open("w") as out:
        process = subprocess.Popen(
            [PULSETRACE, "up", "--data-dir", str(data_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    running = RunningStack(process, data_dir, env, log)
    try:
        wait_for_line(log, "running; press Ctrl-C to stop", process, timeout=120)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def test_status_reports_every_service_healthy(stack: RunningStack) -> None:
    result = stack.cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("postgres", "redis", "warehouse"):
        assert f"{name}" in result.stdout
    assert "UNHEALTHY" not in result.stdout


def test_each_service_answers_on_its_own_port(stack: RunningStack) -> None:
    state = json.loads((stack.data_dir / "run" / "stack.json").read_text())
    env = state["environment"]
    assert (stack.data_dir / "run" / "stack.json").stat().st_mode & 0o077 == 0
    with urllib.request.urlopen(
        f"http://127.0.0.1:{stack.env['WAREHOUSE_PORT']}/ping", timeout=5
    ) as response:
        assert response.read() == b"Ok.\n"
    url = env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"organizations", "projects", "project_keys", "issues"} <= tables
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()
    # The warehouse schema was migrated at start-up.
    query = urllib.request.Request(
        f"http://127.0.0.1:{stack.env['WAREHOUSE_PORT']}/?database=pulsetrace",
        data=b"SELECT name FROM system.tables WHERE database = 'pulsetrace' ORDER BY name",
    )
    with urllib.request.urlopen(query, timeout=10) as response:
        names = response.read().decode().split()
    assert {"raw_events", "events", "transactions", "feedback"} <= set(names)


def test_embedded_services_refuse_the_wrong_password(stack: RunningStack) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            f"host=127.0.0.1 port={stack.env['POSTGRES_PORT']} user=pulsetrace "
            "password=wrong dbname=pulsetrace connect_timeout=5"
        )
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=int(stack.env["REDIS_PORT"]), password="wrong").ping()


def test_bootstrap_is_idempotent_and_prints_a_usable_dsn(stack: RunningStack) -> None:
    args = ("bootstrap", "--org", "Acme Inc", "--project", "Web Shop",
            "--email", "Admin@Acme.test", "--password", "correct horse battery", "--json")
    first = stack.cli(*args)
    assert first.returncode == 0, first.stderr
    second = stack.cli(*args)
    assert second.returncode == 0, second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    for field in ("dsn", "project_id", "org", "project", "token"):
        assert one[field], field
    assert (one["org"], one["project"], one["project_id"], one["dsn"]) == (
        two["org"], two["project"], two["project_id"], two["dsn"]
    )
    assert one["org"] == "acme-inc" and one["project"] == "web-shop"
    public_key = one["public_key"]
    assert one["dsn"] == (
        f"http://{public_key}@127.0.0.1:{stack.env['INGEST_PORT']}/{one['project_id']}"
    )
    assert one["token"] != two["token"]  # only hashes are stored, so each run issues one

    url = json.loads((stack.data_dir / "run" / "stack.json").read_text())["environment"][
        "DATABASE_URL"
    ].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM organizations WHERE slug = 'acme-inc'),"
            " (SELECT count(*) FROM users WHERE email = 'admin@acme.test'),"
            " (SELECT count(*) FROM projects WHERE slug = 'web-shop'),"
            " (SELECT count(*) FROM project_keys k JOIN projects p ON p.id = k.project_id"
            "   WHERE p.slug = 'web-shop'),"
            " (SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id"
            "   WHERE u.email = 'admin@acme.test' AND m.role = 'admin')"
        ).fetchone()
        stored = {r[0] for r in conn.execute("SELECT token_hash FROM api_tokens").fetchall()}
    assert counts == (1, 1, 1, 1, 1)
    assert one["token"] not in stored


def test_bootstrap_rejects_bad_input_clearly(stack: RunningStack) -> None:
    result = stack.cli("bootstrap", "--org", "x", "--project", "y", "--email", "not-an-email",
                       "--password", "long enough pw")
    assert result.returncode == 1
    assert "not an email address" in result.stderr


def test_a_second_up_on_the_same_data_dir_is_refused(stack: RunningStack) -> None:
    result = subprocess.run(
        [PULSETRACE, "up", "--data-dir", str(stack.data_dir)],
        env=stack_environment(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "already running" in result.stdout
    assert str(stack.process.pid) in result.stdout
    assert stack.process.poll() is None  # the first one is untouched


def test_sigterm_stops_everything_and_leaves_no_process(stack: RunningStack) -> None:
    children = stack.descendants()
    assert len(children) >= 3  # postgres, redis, warehouse at least
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert not (stack.data_dir / "run" / "stack.json").exists()
    status = stack.cli("status")
    assert status.returncode == 1
