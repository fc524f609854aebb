"""DSN authentication: which project key a request carries, and whether it may post here.

The key may come in `X-Sentry-Auth` (server SDKs), `?sentry_key=` (browser SDKs, to avoid a
CORS preflight) or the envelope header's `dsn`. Keys are looked up in PostgreSQL and cached
in the process for a few seconds, so a revoked key stops working within that time. While
PostgreSQL cannot be reached, a key looked up in the last few minutes is served as it was
last seen (a database restart must not stop ingest); any other key raises KeysUnavailable.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.db import system_session
from core.models import Project, ProjectKey

_PUBLIC_KEY = re.compile(r"^[0-9a-f]{32}$")
# How long after its last successful load a key is still served while PostgreSQL is down.
STALE_KEY_SECONDS = 300.0
# What a database that is down, restarting or unreachable raises (not what a bug raises).
_DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class KeyInfo:
    key_id: int
    public_key: str
    project_id: int
    organization_id: int
    is_active: bool
    rate_limit_per_minute: int | None
    allowed_origins: tuple[str, ...]


def parse_auth_header(value: str) -> dict[str, str]:
    """`Sentry sentry_key=abc, sentry_version=7, sentry_client=x/1.0` → a dict."""
    value = value.strip()
    if value.lower().startswith("sentry "):
        value = value[7:]
    fields = {}
    for part in value.split(","):
        name, sep, content = part.strip().partition("=")
        if sep:
            fields[name.strip()] = content.strip()
    return fields


def key_from_dsn(dsn: object) -> str | None:
    if not isinstance(dsn, str):
        return None
    return urlsplit(dsn).username


class KeysUnavailable(Exception):
    """PostgreSQL could not be asked about a key, and no recent answer about it is cached."""


class KeyCache:
    def __init__(self, engine: Engine, ttl_seconds: float,
                 stale_seconds: float = STALE_KEY_SECONDS) -> None:
        self.engine = engine
        self.ttl = ttl_seconds
        self.stale_seconds = stale_seconds
        # public key -> (expires at, loaded at, info); None: no such key
        self._entries: dict[str, tuple[float, float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, public_key: str) -> KeyInfo | None:
        now = time.monotonic()
        cached = self._entries.get(public_key)
        if cached is not None and cached[0] > now:
            return cached[2]
        try:
            info = self._load(public_key)
            loaded_at = now
        except _DATABASE_DOWN as exc:
            if cached is None or now - cached[1] > self.stale_seconds:
                raise KeysUnavailable(type(exc).__name__) from exc
            # Served as last loaded; tried again after another TTL, not by every request.
            _, loaded_at, info = cached
        with self._lock:
            if len(self._entries) > 100_000:  # bad keys must not grow memory without bound
                self._entries.clear()
            self._entries[public_key] = (now + self.ttl, loaded_at, info)
        return info

    def _load(self, public_key: str) -> KeyInfo | None:
        statement = (
            select(ProjectKey, Project.allowed_origins)
            .join(Project, Project.id == ProjectKey.project_id)
            .where(ProjectKey.public_key == public_key)
        )
        with system_session(self.engine) as session:
            row = session.execute(statement).first()
        if row is None:
            return None
        key, origins = row
        return KeyInfo(
            key_id=key.id,
            public_key=key.public_key,
            project_id=key.project_id,
            organization_id=key.organization_id,
            is_active=key.is_active and key.revoked_at is None,
            rate_limit_per_minute=key.rate_limit_per_minute,
            allowed_origins=tuple(origins or ()),
        )

    def authenticate(self, public_key: object, project_id: int) -> KeyInfo:
        """public_key: as the request carried it; the envelope header's may be any JSON."""
        if public_key is None or public_key == "":
            raise AuthError(
                401,
                "missing DSN key: send X-Sentry-Auth: Sentry sentry_key=<key>, "
                "or ?sentry_key=<key>, or the dsn in the envelope header",
            )
        if not isinstance(public_key, str) or not _PUBLIC_KEY.match(public_key):
            raise AuthError(403, "invalid DSN key: expected 32 hexadecimal characters")
        info = self.lookup(public_key)
        if info is None:
            raise AuthError(403, "unknown DSN key")
        if not info.is_active:
            raise AuthError(403, "this DSN key has been revoked")
        if info.project_id != project_id:
            raise AuthError(403, f"this DSN key does not belong to project {project_id}")
        return info


def origin_allowed(info: KeyInfo, origin: str | None) -> bool:
    if not origin:
        return True  # not a browser request
    allowed = info.allowed_origins
    return "*" in allowed or origin.rstrip("/") in (o.rstrip("/") for o in allowed)
