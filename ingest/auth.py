"""DSN authentication: which project key a request carries, and whether it may post here.

The key may come in `X-Sentry-Auth` (server SDKs), `?sentry_key=` (browser SDKs, to avoid a
CORS preflight) or the envelope header's `dsn`. Keys are looked up in PostgreSQL and cached
in the process for a few seconds, so a revoked key stops working within that time.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, select

from core.db import system_session
from core.models import Project, ProjectKey

_PUBLIC_KEY = re.compile(r"^[0-9a-f]{32}$")


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


class KeyCache:
    def __init__(self, engine: Engine, ttl_seconds: float) -> None:
        self.engine = engine
        self.ttl = ttl_seconds
        self._entries: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, public_key: str) -> KeyInfo | None:
        now = time.monotonic()
        cached = self._entries.get(public_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        info = self._load(public_key)
        with self._lock:
            if len(self._entries) > 100_000:  # bad keys must not grow memory without bound
                self._entries.clear()
            self._entries[public_key] = (now + self.ttl, info)
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
