"""The permission matrix: every route, called as anonymous, as a developer and as an admin of
the organization, and as an admin of another organization, answers 401/403/404/2xx as its
role requires. The route list is checked against the server's own, so a new route cannot
skip the matrix."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine

from core import db
from core.blobs import blob_store
from core.models import Membership, ProjectKey, Role
from core.security import new_public_key
from core.settings import Settings
from dashboards.api.routing import OPERATIONS
from dashboards.server import create_app
from ingest.attachments import AttachmentFile, attachment_id, store_attachments
from tests.api.conftest import (
    Api,
    Tenant,
    add,
    insert_events,
    make_api_token_row,
    make_user,
)


@dataclass
class World:
    a: Tenant
    b: Tenant
    engine: Engine
    api: Api
    event_id: str
    attachment_id: uuid.UUID
    tokens: dict[str, str] = field(default_factory=dict)

    def fresh_member(self) -> int:
        with db.system_session(self.engine) as session, session.begin():
            user = make_user(session, f"member-{uuid.uuid4().hex[:8]}@tests.local")
            return add(session, Membership(organization_id=self.a.org_id, user_id=user.id,
                                           role=Role.developer)).id

    def fresh_key(self) -> int:
        with db.system_session(self.engine) as session, session.begin():
            return add(session, ProjectKey(organization_id=self.a.org_id,
                                           project_id=self.a.project_id,
                                           public_key=new_public_key(), label="spare")).id

    def fresh_api_token_id(self, user_id: int) -> int:
        return make_api_token_row(self.engine, self.a.org_id, user_id, Role.developer)[1]


@dataclass(frozen=True)
class Route:
    method: str
    path: Callable[[World, str], str]  # (world, identity) -> path
    needs: str  # public | signed_in | developer | admin
    ok: int
    body: Callable[[World, str], Any] | None = None
    rule: str = ""  # the Flask rule under /api/0, to prove every route is covered


ORG = "/organizations/<slug:org>"
PROJ = "/projects/<slug:org>/<slug:project>"
ID = "int(min=1, max=9223372036854775807)"


def _org(w: World, _who: str) -> str:
    return f"/api/0/organizations/{w.a.org}"


def _proj(w: World, _who: str) -> str:
    return f"/api/0/projects/{w.a.org}/{w.a.project}"


def _issue(w: World, _who: str) -> str:
    return f"/api/0/issues/{w.a.issue_id}"


def _login_body(w: World, _who: str) -> dict[str, str]:
    return {"email": w.a.developer, "password": "correct horse battery staple"}


def _refresh_body(w: World, _who: str) -> dict[str, str]:
    return {"refreshToken": w.api.login(w.a.developer).json()["refreshToken"]}


ROUTES = [
    Route("POST", lambda w, i: "/api/0/auth/login", "public", 200, _login_body,
          rule="/auth/login"),
    Route("POST", lambda w, i: "/api/0/auth/refresh", "public", 200, _refresh_body,
          rule="/auth/refresh"),
    Route("POST", lambda w, i: "/api/0/auth/logout", "signed_in", 204, rule="/auth/logout"),
    Route("GET", lambda w, i: "/api/0/me", "signed_in", 200, rule="/me"),
    Route("GET", lambda w, i: "/api/0/openapi.json", "public", 200, rule="/openapi.json"),
    Route("GET", lambda w, i: "/api/0/organizations/", "signed_in", 200,
          rule="/organizations/"),
    Route("GET", lambda w, i: f"{_org(w, i)}/", "developer", 200, rule=f"{ORG}/"),
    Route("PUT", lambda w, i: f"{_org(w, i)}/", "admin", 200,
          lambda w, i: {"name": f"Acme {i}"}, rule=f"{ORG}/"),
    Route("GET", lambda w, i: f"{_org(w, i)}/members/", "developer", 200,
          rule=f"{ORG}/members/"),
    Route("POST", lambda w, i: f"{_org(w, i)}/members/", "admin", 201,
          lambda w, i: {"email": f"new-{uuid.uuid4().hex[:8]}@tests.local",
                        "role": "developer"}, rule=f"{ORG}/members/"),
    Route("PUT", lambda w, i: f"{_org(w, i)}/members/{w.fresh_member()}/", "admin", 200,
          lambda w, i: {"role": "admin"}, rule=f"{ORG}/members/<{ID}:member_id>/"),
    Route("DELETE", lambda w, i: f"{_org(w, i)}/members/{w.fresh_member()}/", "admin", 204,
          rule=f"{ORG}/members/<{ID}:member_id>/"),
    Route("GET", lambda w, i: f"{_org(w, i)}/projects/", "developer", 200,
          rule=f"{ORG}/projects/"),
    Route("POST", lambda w, i: f"{_org(w, i)}/projects/", "admin", 201,
          lambda w, i: {"name": f"Mobile {uuid.uuid4().hex[:6]}"}, rule=f"{ORG}/projects/"),
    Route("GET", lambda w, i: f"{_org(w, i)}/api-tokens/", "developer", 200,
          rule=f"{ORG}/api-tokens/"),
    Route("POST", lambda w, i: f"{_org(w, i)}/api-tokens/", "developer", 201,
          lambda w, i: {"name": "ci"}, rule=f"{ORG}/api-tokens/"),
    # A developer's own token: a developer may revoke it, and so may an admin.
    Route("DELETE",
          lambda w, i: f"{_org(w, i)}/api-tokens/{w.fresh_api_token_id(w.a.developer_id)}/",
          "developer", 204, rule=f"{ORG}/api-tokens/<{ID}:token_id>/"),
    Route("GET", lambda w, i: f"{_org(w, i)}/audit-logs/", "admin", 200,
          rule=f"{ORG}/audit-logs/"),
    Route("GET", lambda w, i: f"{_proj(w, i)}/", "developer", 200, rule=f"{PROJ}/"),
    Route("PUT", lambda w, i: f"{_proj(w, i)}/", "admin", 200,
          lambda w, i: {"scrubbing": {"ipMode": "hash"}}, rule=f"{PROJ}/"),
    Route("GET", lambda w, i: f"{_proj(w, i)}/keys/", "developer", 200, rule=f"{PROJ}/keys/"),
    Route("POST", lambda w, i: f"{_proj(w, i)}/keys/", "admin", 201,
          lambda w, i: {"label": "CI"}, rule=f"{PROJ}/keys/"),
    Route("PUT", lambda w, i: f"{_proj(w, i)}/keys/{w.a.key_id}/", "admin", 200,
          lambda w, i: {"rateLimitPerMinute": 1000}, rule=f"{PROJ}/keys/<{ID}:key_id>/"),
    Route("DELETE", lambda w, i: f"{_proj(w, i)}/keys/{w.fresh_key()}/", "admin", 204,
          rule=f"{PROJ}/keys/<{ID}:key_id>/"),
    Route("POST", lambda w, i: f"{_proj(w, i)}/keys/{w.fresh_key()}/rotate/", "admin", 201,
          rule=f"{PROJ}/keys/<{ID}:key_id>/rotate/"),
    Route("GET", lambda w, i: f"{_proj(w, i)}/issues/?query=", "developer", 200,
          rule=f"{PROJ}/issues/"),
    Route("GET", lambda w, i: f"{_proj(w, i)}/events/{w.event_id}/", "developer", 200,
          rule=f"{PROJ}/events/<eventid:event_id>/"),
    Route("GET", lambda w, i: f"{_proj(w, i)}/events/{w.event_id}/attachments/", "developer",
          200, rule=f"{PROJ}/events/<eventid:event_id>/attachments/"),
    Route("GET", lambda w, i: f"{_proj(w, i)}/events/{w.event_id}/attachments/"
                              f"{w.attachment_id}/?download=1", "developer", 200,
          rule=f"{PROJ}/events/<eventid:event_id>/attachments/<uuid:attachment_id>/"),
    Route("GET", lambda w, i: f"{_issue(w, i)}/", "developer", 200,
          rule=f"/issues/<{ID}:issue_id>/"),
    Route("PUT", lambda w, i: f"{_issue(w, i)}/", "developer", 200,
          lambda w, i: {"status": "unresolved"}, rule=f"/issues/<{ID}:issue_id>/"),
    Route("GET", lambda w, i: f"{_issue(w, i)}/comments/", "developer", 200,
          rule=f"/issues/<{ID}:issue_id>/comments/"),
    Route("POST", lambda w, i: f"{_issue(w, i)}/comments/", "developer", 201,
          lambda w, i: {"text": "looking into it"}, rule=f"/issues/<{ID}:issue_id>/comments/"),
    Route("GET", lambda w, i: f"{_issue(w, i)}/events/", "developer", 200,
          rule=f"/issues/<{ID}:issue_id>/events/"),
    Route("GET", lambda w, i: f"{_issue(w, i)}/events/latest/", "developer", 200,
          rule=f"/issues/<{ID}:issue_id>/events/latest/"),
    Route("GET", lambda w, i: f"{_issue(w, i)}/tags/", "developer", 200,
          rule=f"/issues/<{ID}:issue_id>/tags/"),
    # The seeded issue is its project's first.
    Route("GET", lambda w, i: f"{_org(w, i)}/shortids/{w.a.project.upper()}-1/", "developer",
          200, rule=f"{ORG}/shortids/<short_id>/"),
]

IDENTITIES = ("anonymous", "developer", "admin", "other_admin")


def expected(route: Route, identity: str) -> int:
    if route.needs == "public":
        return route.ok
    if identity == "anonymous":
        return 401
    if route.needs == "signed_in":
        return route.ok
    if identity == "other_admin":
        return 404  # another organization's objects do not exist for it
    if route.needs == "admin" and identity == "developer":
        return 403
    return route.ok


@pytest.fixture(scope="module")
def world(api: Api, engine: Engine, warehouse: Any, tenant_a: Tenant, tenant_b: Tenant,
          api_settings: Settings) -> World:
    [event_id] = insert_events(warehouse, tenant_a.org_id, tenant_a.project_id,
                               tenant_a.issue_id, 1)
    store_attachments(engine, blob_store(api_settings), tenant_a.org_id, tenant_a.project_id,
                      event_id, [AttachmentFile("app.log", "text/plain", "event.attachment",
                                                b"started")])
    return World(tenant_a, tenant_b, engine, api, event_id,
                 attachment_id(tenant_a.project_id, event_id, 0, "app.log"))


def token_for(world: World, identity: str, route: Route) -> str | None:
    if identity == "anonymous":
        return None
    email = {"developer": world.a.developer, "admin": world.a.admin,
             "other_admin": world.b.admin}[identity]
    if route.rule == "/auth/logout":
        return world.api.access(email)  # logout ends the session: a session of its own
    if identity not in world.tokens:
        world.tokens[identity] = world.api.access(email)
    return world.tokens[identity]


def test_every_route_is_in_the_matrix() -> None:
    declared = {(op.method, op.rule) for op in OPERATIONS}
    covered = {(r.method, r.rule) for r in ROUTES}
    assert declared == covered


def test_the_openapi_document_lists_exactly_the_served_routes(api: Api,
                                                               api_settings: Settings) -> None:
    app = create_app(api_settings)
    served = {
        (method.lower(), openapi_form(rule.rule.removeprefix("/api/0")))
        for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/0/")
        for method in rule.methods or () if method not in ("HEAD", "OPTIONS")
    }
    document = api.call("GET", "/api/0/openapi.json").json()
    listed = {(method, path) for path, item in document["paths"].items() for method in item}
    assert listed == served
    # Each protected operation says so, and names the role it needs.
    for path, item in document["paths"].items():
        for method, op in item.items():
            if path in ("/api/0/auth/login", "/api/0/auth/refresh", "/api/0/openapi.json"):
                assert op["security"] == [], (method, path)
            else:
                assert op["security"], (method, path)


def openapi_form(rule: str) -> str:
    return "/api/0" + re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule)


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.rule}")
def test_permission_matrix(world: World, route: Route, identity: str) -> None:
    token = token_for(world, identity, route)
    body = route.body(world, identity) if route.body else None
    answer = world.api.call(route.method, route.path(world, identity), token, json=body)
    assert answer.status_code == expected(route, identity), answer.text
    if answer.status_code >= 400:
        assert answer.json()["detail"]  # every refusal says why


def test_another_orgs_ids_under_your_own_org_answer_404(world: World) -> None:
    """An admin of B naming A's objects by id inside B's own paths finds nothing."""
    a, b = world.a, world.b
    admin_b = world.api.access(b.admin)
    a_member = world.fresh_member()
    a_token = world.fresh_api_token_id(a.developer_id)
    a_key = world.fresh_key()
    keys = f"/api/0/projects/{b.org}/{b.project}/keys"
    members = f"/api/0/organizations/{b.org}/members"
    attempts = [
        ("PUT", f"{keys}/{a_key}/", {"label": "mine now"}),
        ("DELETE", f"{keys}/{a_key}/", None),
        ("POST", f"{keys}/{a_key}/rotate/", None),
        ("PUT", f"{members}/{a_member}/", {"role": "admin"}),
        ("DELETE", f"{members}/{a_member}/", None),
        ("DELETE", f"/api/0/organizations/{b.org}/api-tokens/{a_token}/", None),
        ("GET", f"/api/0/projects/{b.org}/{a.project}/", None),
        ("GET", f"/api/0/organizations/{b.org}/shortids/{a.project.upper()}-1/", None),
        ("GET", f"/api/0/projects/{b.org}/{b.project}/events/{world.event_id}/", None),
        ("GET", f"/api/0/projects/{b.org}/{b.project}/events/{world.event_id}/attachments/"
                f"{world.attachment_id}/?download=1", None),
    ]
    for method, path, body in attempts:
        answer = world.api.call(method, path, admin_b, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    # A's objects are untouched.
    admin_a = world.api.access(a.admin)
    listed = world.api.call("GET", f"/api/0/projects/{a.org}/{a.project}/keys/", admin_a).json()
    key = next(k for k in listed if k["id"] == str(a_key))
    assert key["isActive"] and key["label"] == "spare"
