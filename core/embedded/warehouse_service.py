"""How the chDB warehouse process (core.embedded.warehouse) runs as a service: in
`pulsetrace up`, and in tests and benchmarks through `start_warehouse`."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from core.embedded.process import ManagedProcess, ServiceSpec, python_module_argv, start_healthy
from core.settings import Settings


def service(settings: Settings, warehouse_dir: Path | None = None) -> ServiceSpec:
    argv = python_module_argv(
        "core.embedded.warehouse",
        "--data-dir", str(warehouse_dir or settings.data_dir / "warehouse"),
        "--host", "127.0.0.1",
        "--port", str(settings.warehouse_port),
        "--user", settings.warehouse_user,
        "--password", settings.warehouse_password,
        "--threads", str(settings.warehouse_threads),
        "--max-body-bytes", str(settings.warehouse_max_body_bytes),
    )
    return ServiceSpec(
        name="warehouse",
        argv=argv,
        health=lambda: ping(settings.warehouse_port),
        url=f"http://127.0.0.1:{settings.warehouse_port}",
        log_file=settings.data_dir / "logs" / "warehouse.log",
    )


def ping(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
        return response.status == 200 and response.read().strip() == b"Ok."


def start_warehouse(
    warehouse_dir: Path,
    port: int,
    password: str | None = None,
    *,
    max_body_bytes: int | None = None,
    threads: int | None = None,
    log_file: Path | None = None,
    timeout: float = 30.0,
) -> ManagedProcess:
    """Run a warehouse on `warehouse_dir` and return once it answers /ping (tests, benches)."""
    defaults = Settings(data_dir=warehouse_dir.parent)
    settings = Settings(
        data_dir=warehouse_dir.parent,
        warehouse_port=port,
        warehouse_password=password or "",
        warehouse_max_body_bytes=max_body_bytes or defaults.warehouse_max_body_bytes,
        warehouse_threads=threads or defaults.warehouse_threads,
    )
    spec = service(settings, warehouse_dir)
    spec.log_file = log_file
    spec.startup_timeout = timeout
    return start_healthy(spec)
