"""The management API served for real: the dashboard server (granian, as `pulsetrace up` starts
it) on the session's PostgreSQL, Redis and warehouse, and two organizations to call it as."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from clickhouse_connect.driver.client import Client
from sqlalchemy import Engine, text

from cli.stack import dashboard_service, start_service
from core import db
from core.embedded.process import free_port
from core.models import (
    ApiToken,
    Issue,
    Membership,
    Organization,
    Project,
    ProjectKey,
    Release,
    Role,
    User,
)
from core.security import hash_password, new_api_token, new_public_key
from core.settings import Settings
from core.warehouse import connect

PASSWORD = "correct horse battery staple"
_ips = itertools.count(1)


def fresh_ip() -> str:
    """A client address of its own (the server trusts X-Forwarded-For from 127.0.0.1 here), so
    one test's failed sign-ins never throttle another's."""
    n = next(_ips)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@pytest.fixture(scope="session")
def api_settings(stack_settings: Settings) -> Settings:
    return dataclasses.replace(
        stack_settings,
        dashboard_port=free_port(),
        ingest_trusted_proxies=("127.0.0.1",),
        login_max_failures_per_account=5,
        login_max_failures_per_ip=8,
    )


@pytest.fixture(scope="session")
def engine(api_settings: Settings, postgres_url: str) -> Iterator[Engine]:
    db.upgrade(postgres_url)
    engine = db.make_engine(postgres_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def api_url(api_settings: Settings, engine: Engine, redis_url: str,
            warehouse_url: str) -> Iterator[str]:
    process = start_service(dashboard_service(api_settings), api_settings)
    try:
        yield f"http://{api_settings.host}:{api_settings.dashboard_port}"
    finally:
        process.stop()


@pytest.fixture(scope="session")
def warehouse(warehouse_url: str) -> Iterator[Client]:
    client = connect(warehouse_url)
    try:
        yield client
    finally:
        client.close()


class Api:
    """requests against the running server, with the caller's credentials."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def call(self, method: str, path: str, token: str | None = None, *,
             ip: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers["X-Forwarded-For"] = ip or fresh_ip()
        return self.http.request(method, self.base + path, headers=headers, timeout=30,
                                 allow_redirects=False, **kwargs)

    def login(self, email: str, password: str = PASSWORD, ip: str | None = None
              ) -> requests.Response:
        return self.call("POST", "/api/0/auth/login", json={"email": email, "password": password},
                         ip=ip)

    def access(self, email: str) -> str:
        answer = self.login(email)
        assert answer.status_code == 200, answer.text
        return answer.json()["accessToken"]


@pytest.fixture(scope="session")
def api(api_url: str) -> Api:
    return Api(api_url)


@dataclass(frozen=True)
class Tenant:
    org: str
    org_id: int
    project: str
    project_id: int
    key_id: int
    issue_id: int
    release: str
    admin: str  # emails; every password is PASSWORD
    developer: str
    admin_id: int
    developer_id: int


def add(session: Any, row: Any) -> Any:
    session.add(row)
    session.flush()
    return row


def make_user(session: Any, email: str) -> User:
    return add(session, User(email=email, name=email.split("@")[0],
                             password_hash=hash_password(PASSWORD)))


def make_tenant(engine: Engine, label: str) -> Tenant:
    tag = uuid.uuid4().hex[:8]
    with db.system_session(engine) as session, session.begin():
        org = add(session, Organization(slug=f"{label}-{tag}", name=f"{label} {tag}"))
        admin = make_user(session, f"admin-{label}-{tag}@tests.local")
        developer = make_user(session, f"dev-{label}-{tag}@tests.local")
        add(session, Membership(organization_id=org.id, user_id=admin.id, role=Role.admin))
        add(session, Membership(organization_id=org.id, user_id=developer.id,
                                role=Role.developer))
        project = add(session, Project(organization_id=org.id, slug=f"web-{tag}", name="Web",
                                       allowed_origins=["*"], settings={}))
        key = add(session, ProjectKey(organization_id=org.id, project_id=project.id,
                                      public_key=new_public_key(), label="Default"))
        release = add(session, Release(organization_id=org.id, version=f"shop@{tag}"))
        issue = add(session, Issue(
            organization_id=org.id, project_id=project.id, fingerprint_hash=uuid.uuid4().hex,
            title=f"TypeError: cannot read 'total' of undefined ({tag})", culprit="cart.js in sum",
            level="error", first_release_id=release.id,
        ))
        return Tenant(org.slug, org.id, project.slug, project.id, key.id, issue.id,
                      release.version, admin.email, developer.email, admin.id, developer.id)


@pytest.fixture(scope="session")
def tenant_a(engine: Engine, api_url: str) -> Tenant:
    return make_tenant(engine, "acme")


@pytest.fixture(scope="session")
def tenant_b(engine: Engine, api_url: str) -> Tenant:
    return make_tenant(engine, "globex")


def make_api_token(engine: Engine, org_id: int, user_id: int, role: Role,
                   expires_at: datetime | None = None) -> str:
    return make_api_token_row(engine, org_id, user_id, role, expires_at)[0]


def make_api_token_row(engine: Engine, org_id: int, user_id: int, role: Role,
                       expires_at: datetime | None = None) -> tuple[str, int]:
    """An API token as (plaintext, id), made directly in the database."""
    plaintext, token_hash = new_api_token()
    with db.system_session(engine) as session, session.begin():
        token = add(session, ApiToken(organization_id=org_id, user_id=user_id, name="tests",
                                      token_hash=token_hash, scopes=[f"org:{role.value}"],
                                      expires_at=expires_at))
        return plaintext, token.id


def insert_events(warehouse: Client, tenant_org_id: int, project_id: int, issue_id: int,
                  count: int, *, users: int = 1, release: str = "", hours_ago: float = 1.0,
                  tags: dict[str, str] | None = None) -> list[str]:
    """Processed events as the pipeline writes them (the columns the API reads)."""
    now = datetime.now(UTC) - timedelta(hours=hours_ago)
    ids, rows = [], []
    for n in range(count):
        event_id = uuid.uuid4()
        ids.append(event_id.hex)
        pairs = {"level": "error", "browser": "Chrome", **(tags or {})}
        if release:
            pairs["release"] = release
        rows.append([tenant_org_id, project_id, event_id, issue_id, "0" * 32,
                     now - timedelta(seconds=n), now, "error", "javascript",
                     "TypeError: boom", "cart.js", "boom", release, f"id:user-{n % users}",
                     list(pairs), list(pairs.values())])
    warehouse.insert(
        "events", rows,
        column_names=["organization_id", "project_id", "event_id", "issue_id",
                      "fingerprint_hash", "timestamp", "received_at", "level", "platform",
                      "title", "culprit", "message", "release", "user_key", "tags.key",
                      "tags.value"],
    )
    return ids


def sql(engine: Engine, statement: str, **parameters: Any) -> list[Any]:
    with engine.begin() as conn:
        result = conn.execute(text(statement), parameters)
        return list(result) if result.returns_rows else []
