"""How `pulsetrace up` runs the chDB warehouse process (core.embedded.warehouse) as a service."""

from __future__ import annotations

import urllib.request

from core.embedded.process import ServiceSpec, python_module_argv
from core.settings import Settings


def service(settings: Settings) -> ServiceSpec:
    argv = python_module_argv(
        "core.embedded.warehouse",
        "--data-dir", str(settings.data_dir / "warehouse"),
        "--host", "127.0.0.1",
        "--port", str(settings.warehouse_port),
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
