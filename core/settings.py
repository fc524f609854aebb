"""The one settings object: every knob comes from an environment variable.

Unset URLs mean "embedded": `pulsetrace up` starts that service itself inside the data dir
and hands the resulting URL to every child process through the same variables.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import quote


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _env_str(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw if raw else None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str
    ingest_port: int
    dashboard_port: int
    warehouse_port: int
    dagster_port: int
    postgres_port: int
    redis_port: int
    # External URLs; None means the embedded service in data_dir.
    external_database_url: str | None = None
    external_redis_url: str | None = None
    external_clickhouse_url: str | None = None
    external_blob_url: str | None = None
    external_secret_key: str | None = None
    public_ingest_url: str | None = None
    s3_endpoint_url: str | None = None
    warehouse_max_body_bytes: int = 256 * 1024 * 1024
    warehouse_threads: int = 8
    warehouse_user: str = "default"
    warehouse_password: str = ""
    ingest_max_body_bytes: int = 20 * 1024 * 1024
    ingest_max_decompressed_bytes: int = 100 * 1024 * 1024
    ingest_max_batch_events: int = 10_000
    ingest_rate_limit_per_minute: int = 600_000
    ingest_rate_limit_window_seconds: float = 60.0
    ingest_key_cache_seconds: float = 5.0
    ingest_trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None) -> Settings:
        root = Path(data_dir or os.environ.get("PULSETRACE_DATA_DIR") or ".pulsetrace")
        return cls(
            data_dir=root.resolve(),
            host=os.environ.get("PULSETRACE_HOST", "127.0.0.1"),
            ingest_port=_env_int("INGEST_PORT", 8000),
            dashboard_port=_env_int("DASHBOARD_PORT", 8050),
            warehouse_port=_env_int("WAREHOUSE_PORT", 8123),
            dagster_port=_env_int("DAGSTER_PORT", 3000),
            postgres_port=_env_int("POSTGRES_PORT", 54329),
            redis_port=_env_int("REDIS_PORT", 63799),
            external_database_url=_env_str("DATABASE_URL"),
            external_redis_url=_env_str("REDIS_URL"),
            external_clickhouse_url=_env_str("CLICKHOUSE_URL"),
            external_blob_url=_env_str("BLOB_URL"),
            external_secret_key=_env_str("SECRET_KEY"),
            public_ingest_url=_env_str("PUBLIC_INGEST_URL"),
            s3_endpoint_url=_env_str("S3_ENDPOINT_URL"),
            warehouse_max_body_bytes=_env_int("WAREHOUSE_MAX_BODY_BYTES", 256 * 1024 * 1024),
            warehouse_threads=_env_int("WAREHOUSE_THREADS", 8),
            warehouse_user=os.environ.get("WAREHOUSE_USER", "default"),
            warehouse_password=os.environ.get("WAREHOUSE_PASSWORD", ""),
            ingest_max_body_bytes=_env_int("INGEST_MAX_BODY_BYTES", 20 * 1024 * 1024),
            ingest_max_decompressed_bytes=_env_int(
                "INGEST_MAX_DECOMPRESSED_BYTES", 100 * 1024 * 1024
            ),
            ingest_max_batch_events=_env_int("INGEST_MAX_BATCH_EVENTS", 10_000),
            ingest_rate_limit_per_minute=_env_int("INGEST_RATE_LIMIT_PER_MINUTE", 600_000),
            ingest_rate_limit_window_seconds=_env_float("INGEST_RATE_LIMIT_WINDOW_SECONDS", 60.0),
            ingest_key_cache_seconds=_env_float("INGEST_KEY_CACHE_SECONDS", 5.0),
            ingest_trusted_proxies=tuple(
                p.strip() for p in os.environ.get("INGEST_TRUSTED_PROXIES", "").split(",")
                if p.strip()
            ),
        )

    # --- which services are embedded -------------------------------------------------
    @property
    def embedded_postgres(self) -> bool:
        return self.external_database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.external_redis_url is None

    @property
    def embedded_warehouse(self) -> bool:
        return self.external_clickhouse_url is None

    # --- effective URLs ----------------------------------------------------------------
    @cached_property
    def database_url(self) -> str:
        if self.external_database_url:
            return self.external_database_url
        password = quote(self.local_secret("postgres_password"), safe="")
        return f"postgresql+psycopg://pulsetrace:{password}@127.0.0.1:{self.postgres_port}/pulsetrace"

    @cached_property
    def redis_url(self) -> str:
        if self.external_redis_url:
            return self.external_redis_url
        password = quote(self.local_secret("redis_password"), safe="")
        return f"redis://:{password}@127.0.0.1:{self.redis_port}/0"

    @property
    def clickhouse_url(self) -> str:
        return self.external_clickhouse_url or (
            f"http://{quote(self.warehouse_user, safe='')}:"
            f"{quote(self.warehouse_password, safe='')}@127.0.0.1:{self.warehouse_port}/pulsetrace"
        )

    @property
    def blob_url(self) -> str:
        return self.external_blob_url or f"file://{self.data_dir / 'blobs'}"

    @property
    def ingest_public_url(self) -> str:
        return (self.public_ingest_url or f"http://{self.host}:{self.ingest_port}").rstrip("/")

    @cached_property
    def secret_key(self) -> str:
        return self.external_secret_key or self.local_secret("secret_key")

    def local_secret(self, name: str) -> str:
        """A secret generated once per data dir and kept there (mode 600), never in the repo."""
        path = self.data_dir / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return path.read_text().strip()
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def child_environment(self) -> dict[str, str]:
        """The variables that point a child process at exactly this stack."""
        return {
            "PULSETRACE_DATA_DIR": str(self.data_dir),
            "PULSETRACE_HOST": self.host,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CLICKHOUSE_URL": self.clickhouse_url,
            "BLOB_URL": self.blob_url,
            "SECRET_KEY": self.secret_key,
            "PUBLIC_INGEST_URL": self.ingest_public_url,
            "INGEST_PORT": str(self.ingest_port),
            "DASHBOARD_PORT": str(self.dashboard_port),
            "WAREHOUSE_PORT": str(self.warehouse_port),
            "DAGSTER_PORT": str(self.dagster_port),
            "WAREHOUSE_USER": self.warehouse_user,
            "WAREHOUSE_PASSWORD": self.warehouse_password,
        }


def get_settings() -> Settings:
    return Settings.from_env()
