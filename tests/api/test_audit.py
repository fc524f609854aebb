"""Every audited action leaves one entry: who, what, when, from which IP, before/after; the log
filters by action, actor and time, and entries cannot be rewritten."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from tests.api.conftest import Api, Tenant, fresh_ip, make_tenant, sql


@dataclass
class Org:
    tenant: Tenant
    api: Api
    admin: str  # access token

    def call(self, method: str, path: str, ip: str, body: Any = None) -> Any:
        answer = self.api.call(method, path, self.admin, ip=ip, json=body)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def log(self, **filters: str) -> list[dict[str, Any]]:
        answer = self.api.call("GET", f"/api/0/organizations/{self.tenant.org}/audit-logs/",
                               self.admin, params=filters)
        assert answer.status_code == 200, answer.text
        return answer.json()["rows"]


@pytest.fixture(scope="module")
def org(api: Api, engine: Engine, api_url: str) -> Org:
    tenant = make_tenant(engine, "audited")
    return Org(tenant, api, api.access(tenant.admin))


def _member(o: Org, ip: str) -> tuple[str, str]:
    made = o.call("POST", f"/api/0/organizations/{o.tenant.org}/members/", ip,
                  {"email": f"m-{uuid.uuid4().hex[:8]}@tests.local", "role": "developer"})
    return str(made["id"]), made["email"]


def _key(o: Org, ip: str) -> str:
    made = o.call("POST", f"/api/0/projects/{o.tenant.org}/{o.tenant.project}/keys/", fresh_ip(),
                  {"label": "audited"})
    return str(made["id"])


def _issue(o: Org) -> str:
    return f"/api/0/issues/{o.tenant.issue_id}/"


KEYS = "/api/0/projects/{org}/{project}/keys"


def keys_path(o: Org) -> str:
    return KEYS.format(org=o.tenant.org, project=o.tenant.project)


# action -> (do it from `ip`, returning the expected target id; expected before; after)
Action = Callable[[Org, str], tuple[str, Any, Any]]


def org_edit(o: Org, ip: str) -> tuple[str, Any, Any]:
    before = o.call("GET", f"/api/0/organizations/{o.tenant.org}/", fresh_ip())["name"]
    o.call("PUT", f"/api/0/organizations/{o.tenant.org}/", ip, {"name": "Audited Inc"})
    return str(o.tenant.org_id), {"name": before}, {"name": "Audited Inc"}


def member_add(o: Org, ip: str) -> tuple[str, Any, Any]:
    email = f"new-{uuid.uuid4().hex[:8]}@tests.local"
    made = o.call("POST", f"/api/0/organizations/{o.tenant.org}/members/", ip,
                  {"email": email, "role": "developer"})
    return made["id"], None, {"email": email, "role": "developer"}


def member_role_change(o: Org, ip: str) -> tuple[str, Any, Any]:
    member, _email = _member(o, fresh_ip())
    o.call("PUT", f"/api/0/organizations/{o.tenant.org}/members/{member}/", ip, {"role": "admin"})
    return member, {"role": "developer"}, {"role": "admin"}


def member_remove(o: Org, ip: str) -> tuple[str, Any, Any]:
    member, email = _member(o, fresh_ip())
    o.call("DELETE", f"/api/0/organizations/{o.tenant.org}/members/{member}/", ip)
    return member, {"email": email, "role": "developer"}, None


def project_create(o: Org, ip: str) -> tuple[str, Any, Any]:
    slug = f"p-{uuid.uuid4().hex[:8]}"
    made = o.call("POST", f"/api/0/organizations/{o.tenant.org}/projects/", ip,
                  {"name": "Audited", "slug": slug})
    return made["id"], None, {"slug": slug, "name": "Audited"}


def project_settings_change(o: Org, ip: str) -> tuple[str, Any, Any]:
    path = f"/api/0/projects/{o.tenant.org}/{o.tenant.project}/"
    o.call("PUT", path, ip, {"scrubbing": {"ipMode": "keep"}})  # known starting point
    o.call("PUT", path, ip, {"scrubbing": {"ipMode": "drop", "extraPatterns": ["order-\\d+"]}})
    before = {"scrubbing": {"ipMode": "keep", "extraPatterns": [], "safeFields": []}}
    after = {"scrubbing": {"ipMode": "drop", "extraPatterns": ["order-\\d+"], "safeFields": []}}
    return str(o.tenant.project_id), before, after


def key_create(o: Org, ip: str) -> tuple[str, Any, Any]:
    made = o.call("POST", f"{keys_path(o)}/", ip, {"label": "mobile"})
    return made["id"], None, {"label": "mobile", "public": made["public"],
                              "rateLimitPerMinute": None}


def key_edit(o: Org, ip: str) -> tuple[str, Any, Any]:
    key = _key(o, fresh_ip())
    o.call("PUT", f"{keys_path(o)}/{key}/", ip, {"rateLimitPerMinute": 120})
    return key, {"label": "audited", "rateLimitPerMinute": None}, \
        {"label": "audited", "rateLimitPerMinute": 120}


def key_revoke(o: Org, ip: str) -> tuple[str, Any, Any]:
    key = _key(o, fresh_ip())
    o.call("DELETE", f"{keys_path(o)}/{key}/", ip)
    return key, {"isActive": True}, {"isActive": False}


def key_rotate(o: Org, ip: str) -> tuple[str, Any, Any]:
    key = _key(o, fresh_ip())
    old = next(k for k in o.call("GET", f"{keys_path(o)}/", fresh_ip()) if k["id"] == key)
    new = o.call("POST", f"{keys_path(o)}/{key}/rotate/", ip)
    return key, {"public": old["public"]}, {"public": new["public"], "id": new["id"]}


def api_token_create(o: Org, ip: str) -> tuple[str, Any, Any]:
    made = o.call("POST", f"/api/0/organizations/{o.tenant.org}/api-tokens/", ip,
                  {"name": "deploys", "role": "developer"})
    return made["id"], None, {"name": "deploys", "role": "developer"}


def api_token_revoke(o: Org, ip: str) -> tuple[str, Any, Any]:
    made = o.call("POST", f"/api/0/organizations/{o.tenant.org}/api-tokens/", fresh_ip(),
                  {"name": "short-lived", "role": "admin"})
    o.call("DELETE", f"/api/0/organizations/{o.tenant.org}/api-tokens/{made['id']}/", ip)
    return made["id"], {"name": "short-lived", "role": "admin",
                        "userId": str(o.tenant.admin_id)}, None


def _status(o: Org, ip: str, body: dict[str, Any], prepare: dict[str, Any]) -> None:
    o.call("PUT", _issue(o), fresh_ip(), prepare)
    o.call("PUT", _issue(o), ip, body)


def issue_resolve(o: Org, ip: str) -> tuple[str, Any, Any]:
    _status(o, ip, {"status": "resolved", "statusDetails": {"inRelease": o.tenant.release}},
            {"status": "unresolved"})
    return str(o.tenant.issue_id), {"status": "unresolved", "inRelease": None}, \
        {"status": "resolved", "inRelease": o.tenant.release}


def issue_unresolve(o: Org, ip: str) -> tuple[str, Any, Any]:
    _status(o, ip, {"status": "unresolved"}, {"status": "resolved"})
    return str(o.tenant.issue_id), {"status": "resolved", "inRelease": None}, \
        {"status": "unresolved", "inRelease": None}


def issue_ignore(o: Org, ip: str) -> tuple[str, Any, Any]:
    _status(o, ip, {"status": "ignored"}, {"status": "unresolved"})
    return str(o.tenant.issue_id), {"status": "unresolved", "inRelease": None}, \
        {"status": "ignored", "inRelease": None}


def issue_assign(o: Org, ip: str) -> tuple[str, Any, Any]:
    o.call("PUT", _issue(o), fresh_ip(), {"assignedTo": None})
    o.call("PUT", _issue(o), ip, {"assignedTo": o.tenant.developer})
    return str(o.tenant.issue_id), {"assignee": None}, {"assignee": o.tenant.developer}


def issue_unassign(o: Org, ip: str) -> tuple[str, Any, Any]:
    o.call("PUT", _issue(o), fresh_ip(), {"assignedTo": f"user:{o.tenant.admin_id}"})
    o.call("PUT", _issue(o), ip, {"assignedTo": None})
    return str(o.tenant.issue_id), {"assignee": o.tenant.admin}, {"assignee": None}


ACTIONS: dict[str, Action] = {
    "org.edit": org_edit,
    "member.add": member_add,
    "member.role_change": member_role_change,
    "member.remove": member_remove,
    "project.create": project_create,
    "project.settings_change": project_settings_change,
    "key.create": key_create,
    "key.edit": key_edit,
    "key.revoke": key_revoke,
    "key.rotate": key_rotate,
    "api_token.create": api_token_create,
    "api_token.revoke": api_token_revoke,
    "issue.resolve": issue_resolve,
    "issue.unresolve": issue_unresolve,
    "issue.ignore": issue_ignore,
    "issue.assign": issue_assign,
    "issue.unassign": issue_unassign,
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_audited_action_is_recorded(org: Org, action: str) -> None:
    ip = fresh_ip()
    started = datetime.now(UTC) - timedelta(seconds=1)
    target, before, after = ACTIONS[action](org, ip)
    entries = [e for e in org.log(event=action) if e["ipAddress"] == ip]
    assert len(entries) == 1, entries
    [entry] = entries
    assert entry["actor"]["email"] == org.tenant.admin
    assert entry["targetObject"] == target
    when = datetime.fromisoformat(entry["dateCreated"].replace("Z", "+00:00"))
    assert started <= when <= datetime.now(UTC) + timedelta(seconds=1)
    assert entry["data"].get("before") == before
    assert entry["data"].get("after") == after


def test_sign_ins_are_recorded_failed_ones_too(org: Org, api: Api) -> None:
    ip = fresh_ip()
    assert api.login(org.tenant.developer, "wrong", ip=ip).status_code == 401
    assert api.login(org.tenant.developer, ip=ip).status_code == 200
    mine = [e for e in org.log() if e["ipAddress"] == ip]
    assert [e["event"] for e in mine] == ["auth.login", "auth.login_failed"]  # newest first
    assert all(e["actor"]["email"] == org.tenant.developer for e in mine)
    assert all(e["data"] == {"via": "api"} for e in mine)


def test_a_refused_change_leaves_no_entry(org: Org, api: Api) -> None:
    ip = fresh_ip()
    path = f"/api/0/projects/{org.tenant.org}/{org.tenant.project}/"
    bad = api.call("PUT", path, org.admin, ip=ip, json={"scrubbing": {"extraPatterns": ["(?<"]}})
    assert bad.status_code == 400
    assert not [e for e in org.log() if e["ipAddress"] == ip]


def test_the_log_filters_by_actor_and_time(org: Org, api: Api) -> None:
    developer = api.access(org.tenant.developer)
    ip = fresh_ip()
    org.call("PUT", _issue(org), fresh_ip(), {"status": "ignored"})
    answer = api.call("PUT", _issue(org), developer, ip=ip, json={"status": "unresolved"})
    assert answer.status_code == 200
    by_developer = org.log(actor=org.tenant.developer)
    assert by_developer and all(e["actor"]["email"] == org.tenant.developer
                                for e in by_developer)
    assert any(e["ipAddress"] == ip for e in by_developer)
    assert org.log(actor=str(org.tenant.developer_id)) == by_developer
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert org.log(start=future) == []
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert org.log(end=past) == []
    bad = api.call("GET", f"/api/0/organizations/{org.tenant.org}/audit-logs/", org.admin,
                   params={"start": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["detail"]


def test_entries_cannot_be_rewritten(org: Org, engine: Engine) -> None:
    [(entry_id,)] = sql(engine, "SELECT max(id) FROM audit_log_entries WHERE organization_id = :o",
                        o=org.tenant.org_id)
    with pytest.raises(DBAPIError, match="append-only"):
        sql(engine, "UPDATE audit_log_entries SET action = 'nothing' WHERE id = :id", id=entry_id)
    with pytest.raises(DBAPIError, match="append-only"):
        sql(engine, "UPDATE audit_log_entries SET ip_address = '1.2.3.4' WHERE id = :id",
            id=entry_id)
    with pytest.raises(DBAPIError, match="append-only"):
        sql(engine, "DELETE FROM audit_log_entries WHERE id = :id", id=entry_id)


def test_deleting_a_user_keeps_their_entries(org: Org, api: Api, engine: Engine) -> None:
    email = f"leaver-{uuid.uuid4().hex[:8]}@tests.local"
    made = org.call("POST", f"/api/0/organizations/{org.tenant.org}/members/", fresh_ip(),
                    {"email": email, "role": "admin", "password": "a long enough password"})
    leaver = api.login(email, "a long enough password").json()["accessToken"]
    ip = fresh_ip()
    org.call("PUT", _issue(org), fresh_ip(), {"status": "unresolved"})
    answer = api.call("PUT", _issue(org), leaver, ip=ip, json={"status": "ignored"})
    assert answer.status_code == 200
    [(user_id,)] = sql(engine, "SELECT user_id FROM memberships WHERE id = :id",
                       id=int(made["id"]))
    sql(engine, "DELETE FROM users WHERE id = :id", id=user_id)  # actor becomes NULL
    [entry] = [e for e in org.log(event="issue.ignore") if e["ipAddress"] == ip]
    assert entry["actor"] is None
    assert entry["data"]["after"]["status"] == "ignored"
