"""The one settings object: every knob comes from an environment variable.

Unset URLs mean "embedded": `pulsetrace up` starts that service itself inside the data dir
and hands the resulting URL to every child process through the same variables.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from urllib.parse import quote


def _env(name: str) -> dict[str, str]:
    """Field metadata: the environment variable that sets this field."""
    return {"env": name}


def _parse(name: str, raw: str, kind: object) -> object:
    text = str(kind)
    try:
        if "tuple" in text:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if text in ("int", "<class 'int'>"):
            return int(raw)
        if text in ("float", "<class 'float'>"):
            return float(raw)
    except ValueError:
        what = "an integer" if "int" in text else "a number"
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None
    return raw


# PulseTrace's own processes, as `up` names them; a node of a scaled-out deployment runs some.
SERVICES = ("ingest", "worker", "processing", "dashboard", "dagster")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(metadata=_env("PULSETRACE_DATA_DIR"))
    host: str = field(default="127.0.0.1", metadata=_env("PULSETRACE_HOST"))
    ingest_port: int = field(default=8000, metadata=_env("INGEST_PORT"))
    dashboard_port: int = field(default=8050, metadata=_env("DASHBOARD_PORT"))
    warehouse_port: int = field(default=8123, metadata=_env("WAREHOUSE_PORT"))
    dagster_port: int = field(default=3000, metadata=_env("DAGSTER_PORT"))
    postgres_port: int = field(default=54329, metadata=_env("POSTGRES_PORT"))
    redis_port: int = field(default=63799, metadata=_env("REDIS_PORT"))
    # External services; None means the embedded service in data_dir.
    external_database_url: str | None = field(default=None, metadata=_env("DATABASE_URL"))
    external_redis_url: str | None = field(default=None, metadata=_env("REDIS_URL"))
    external_clickhouse_url: str | None = field(default=None, metadata=_env("CLICKHOUSE_URL"))
    external_blob_url: str | None = field(default=None, metadata=_env("BLOB_URL"))
    external_secret_key: str | None = field(default=None, metadata=_env("SECRET_KEY"))
    public_ingest_url: str | None = field(default=None, metadata=_env("PUBLIC_INGEST_URL"))
    s3_endpoint_url: str | None = field(default=None, metadata=_env("S3_ENDPOINT_URL"))
    warehouse_max_body_bytes: int = field(
        default=256 * 1024 * 1024, metadata=_env("WAREHOUSE_MAX_BODY_BYTES")
    )
    warehouse_threads: int = field(default=8, metadata=_env("WAREHOUSE_THREADS"))
    warehouse_user: str = field(default="default", metadata=_env("WAREHOUSE_USER"))
    warehouse_password: str = field(default="", metadata=_env("WAREHOUSE_PASSWORD"))
    ingest_max_body_bytes: int = field(
        default=20 * 1024 * 1024, metadata=_env("INGEST_MAX_BODY_BYTES")
    )
    ingest_max_decompressed_bytes: int = field(
        default=100 * 1024 * 1024, metadata=_env("INGEST_MAX_DECOMPRESSED_BYTES")
    )
    ingest_max_batch_events: int = field(default=10_000, metadata=_env("INGEST_MAX_BATCH_EVENTS"))
    # One event (or transaction, feedback, user report) at most, as Relay's max_event_size:
    # every event is one row of a warehouse insert.
    ingest_max_event_bytes: int = field(
        default=1024 * 1024, metadata=_env("INGEST_MAX_EVENT_BYTES")
    )
    ingest_rate_limit_per_minute: int = field(
        default=600_000, metadata=_env("INGEST_RATE_LIMIT_PER_MINUTE")
    )
    ingest_rate_limit_window_seconds: float = field(
        default=60.0, metadata=_env("INGEST_RATE_LIMIT_WINDOW_SECONDS")
    )
    ingest_key_cache_seconds: float = field(default=5.0, metadata=_env("INGEST_KEY_CACHE_SECONDS"))
    # How long ingest waits for a Redis reply before answering 503 + Retry-After (a Redis
    # that is connected but silent: paused, stalled, half-open TCP); raise it for a slow
    # link to an external Redis.
    ingest_redis_timeout_seconds: float = field(
        default=3.0, metadata=_env("INGEST_REDIS_TIMEOUT_SECONDS")
    )
    # Processes the pipeline spreads a large batch over (0: one per core; 1: no pool).
    pipeline_workers: int = field(default=0, metadata=_env("PIPELINE_WORKERS"))
    # Which of SERVICES `up` starts (the embedded PostgreSQL, Redis and warehouse always,
    # unless their URLs point elsewhere): e.g. "ingest,worker" for an ingest node.
    services: tuple[str, ...] = field(default=SERVICES, metadata=_env("PULSETRACE_SERVICES"))
    # Peers whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated).
    ingest_trusted_proxies: tuple[str, ...] = field(
        default=(), metadata=_env("INGEST_TRUSTED_PROXIES")
    )
    # Management API sign-in: access tokens are short so a stolen one is soon useless;
    # a refresh-token family ends after api_session_seconds whatever its rotations.
    api_access_token_seconds: int = field(default=900, metadata=_env("API_ACCESS_TOKEN_SECONDS"))
    api_session_seconds: int = field(
        default=30 * 24 * 3600, metadata=_env("API_SESSION_SECONDS")
    )
    # Failed sign-ins allowed per account and per client IP within the window, then 429.
    login_max_failures_per_account: int = field(
        default=5, metadata=_env("LOGIN_MAX_FAILURES_PER_ACCOUNT")
    )
    login_max_failures_per_ip: int = field(default=30, metadata=_env("LOGIN_MAX_FAILURES_PER_IP"))
    login_throttle_seconds: int = field(default=900, metadata=_env("LOGIN_THROTTLE_SECONDS"))

    # The dbt project (issue 6): where it lives (a copy with a team's own models works too),
    # which profiles.yml target runs it, the database its models are built in, and how often
    # the runner rebuilds them at most while new events are being processed.
    transforms_dir: str = field(
        default=str(Path(__file__).resolve().parents[1] / "transforms"),
        metadata=_env("TRANSFORMS_DIR"),
    )
    dbt_target: str = field(default="embedded", metadata=_env("DBT_TARGET"))
    marts_database: str = field(default="pulsetrace_marts", metadata=_env("MARTS_DATABASE"))
    marts_refresh_seconds: float = field(default=30.0, metadata=_env("MARTS_REFRESH_SECONDS"))

    def __post_init__(self) -> None:
        unknown = [name for name in self.services if name not in SERVICES]
        if unknown or not self.services:
            raise ValueError(
                f"PULSETRACE_SERVICES must name some of {', '.join(SERVICES)}; "
                f"got {', '.join(self.services) or 'none'}"
            )

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None) -> Settings:
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = _parse(f.metadata["env"], raw, f.type)
        root = Path(data_dir or values.pop("data_dir", None) or ".pulsetrace")
        values["data_dir"] = root.resolve()
        return cls(**values)  # type: ignore[arg-type]

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

    @property
    def redis_socket(self) -> Path | None:
        """The embedded Redis's Unix socket, None where its path is too long for one (a
        socket path holds at most 107 bytes): then clients use TCP only."""
        path = self.data_dir.absolute() / "redis" / "redis.sock"
        return path if len(os.fsencode(path)) <= 100 else None

    @cached_property
    def redis_url(self) -> str:
        if self.external_redis_url:
            return self.external_redis_url
        password = quote(self.local_secret("redis_password"), safe="")
        # The socket, where there is one: a round trip costs Redis ~15% less CPU than over
        # TCP on 127.0.0.1, and the ingest makes one for every few requests.
        if self.redis_socket is not None:
            return f"unix://:{password}@{quote(str(self.redis_socket))}?db=0"
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

    @property
    def dagster_home(self) -> Path:
        """Dagster's instance (runs, event log) for the runner and the Dagster UI."""
        return self.data_dir / "dagster"

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
        """Every setting as a variable, so a child process sees exactly this stack; the
        embedded services appear as the URLs they are served on."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[f.metadata["env"]] = (
                    ",".join(value) if isinstance(value, tuple) else str(value)
                )
        env.update({
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CLICKHOUSE_URL": self.clickhouse_url,
            "BLOB_URL": self.blob_url,
            "SECRET_KEY": self.secret_key,
            "PUBLIC_INGEST_URL": self.ingest_public_url,
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_DISABLE_TELEMETRY": "1",  # no uploads: users' data stays theirs
        })
        return env


def get_settings() -> Settings:
    return Settings.from_env()
