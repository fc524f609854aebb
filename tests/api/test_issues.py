"""The issue stream and triage, events and tags, projects and keys, as a user sees them
through the API; and tenancy in ClickHouse as well as in PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from core import db
from core.models import Issue, Role
from dashboards.api.issues import parse_short_id, short_id_text
from tests.api.conftest import Api, Tenant, add, insert_events, make_api_token, make_tenant


@dataclass
class Stream:
    tenant: Tenant
    token: str
    ids: dict[str, int]  # issue name -> id

    def path(self) -> str:
        return f"/api/0/projects/{self.tenant.org}/{self.tenant.project}/issues/"


def make_issue(engine: Engine, tenant: Tenant, title: str, *, first_seen: datetime,
               last_seen: datetime, level: str = "error", culprit: str = "app.js") -> int:
    with db.system_session(engine) as session, session.begin():
        return add(session, Issue(
            organization_id=tenant.org_id, project_id=tenant.project_id,
            fingerprint_hash=uuid.uuid4().hex, title=title, culprit=culprit, level=level,
            first_seen=first_seen, last_seen=last_seen)).id


@pytest.fixture(scope="module")
def stream(api: Api, engine: Engine, warehouse: Any, api_url: str) -> Stream:
    tenant = make_tenant(engine, "stream")
    now = datetime.now(UTC)
    ids = {
        # frequent: most events, few users; widespread: fewer events, most users;
        # fresh: first seen last; stale: last seen 20 days ago (outside 14d).
        "frequent": make_issue(engine, tenant, "TypeError: frequent", level="error",
                               first_seen=now - timedelta(days=3),
                               last_seen=now - timedelta(hours=5)),
        "widespread": make_issue(engine, tenant, "RangeError: widespread", level="warning",
                                 first_seen=now - timedelta(days=2),
                                 last_seen=now - timedelta(hours=1)),
        "fresh": make_issue(engine, tenant, "SyntaxError: fresh", culprit="checkout.js in pay",
                            first_seen=now - timedelta(hours=2),
                            last_seen=now - timedelta(hours=2)),
        "stale": make_issue(engine, tenant, "Error: stale", first_seen=now - timedelta(days=30),
                            last_seen=now - timedelta(days=20)),
    }
    insert_events(warehouse, tenant.org_id, tenant.project_id, ids["frequent"], 12, users=2,
                  release="shop@1.0.0", hours_ago=5)
    insert_events(warehouse, tenant.org_id, tenant.project_id, ids["widespread"], 6, users=6,
                  release="shop@2.0.0", hours_ago=1)
    insert_events(warehouse, tenant.org_id, tenant.project_id, ids["fresh"], 1, hours_ago=2)
    insert_events(warehouse, tenant.org_id, tenant.project_id, ids["stale"], 3,
                  hours_ago=20 * 24)
    token = make_api_token(engine, tenant.org_id, tenant.developer_id, Role.developer)
    # The tenant's own seeded issue has no events; it is unresolved and seen now.
    ids["seeded"] = tenant.issue_id
    return Stream(tenant, token, ids)


def listed(api: Api, s: Stream, **params: str) -> list[str]:
    answer = api.call("GET", s.path(), s.token, params=params)
    assert answer.status_code == 200, answer.text
    names = {v: k for k, v in s.ids.items()}
    return [names[int(issue["id"])] for issue in answer.json()]


def test_sorts(api: Api, stream: Stream) -> None:
    assert listed(api, stream, sort="date") == ["seeded", "widespread", "fresh", "frequent"]
    assert listed(api, stream, sort="new") == ["seeded", "fresh", "widespread", "frequent"]
    assert listed(api, stream, sort="freq")[:3] == ["frequent", "widespread", "fresh"]
    assert listed(api, stream, sort="user")[:3] == ["widespread", "frequent", "fresh"]


def test_counts_follow_the_period(api: Api, stream: Stream) -> None:
    answer = api.call("GET", stream.path(), stream.token, params={"statsPeriod": "3h"}).json()
    by_id = {int(i["id"]): i for i in answer}
    assert set(by_id) == {stream.ids["widespread"], stream.ids["fresh"], stream.ids["seeded"]}
    assert by_id[stream.ids["widespread"]]["count"] == "6"
    assert by_id[stream.ids["widespread"]]["userCount"] == 6
    # All time: the stale issue is back, with its events.
    everything = listed(api, stream, statsPeriod="", sort="freq")
    assert set(everything) == {"frequent", "widespread", "fresh", "stale", "seeded"}
    detail = api.call("GET", f"/api/0/issues/{stream.ids['frequent']}/", stream.token).json()
    assert detail["count"] == "12" and detail["userCount"] == 2
    assert detail["shortId"] == f"{stream.tenant.project.upper()}-2"  # its project's second


def test_search(api: Api, stream: Stream) -> None:
    assert listed(api, stream, query="widespread") == ["widespread"]
    assert listed(api, stream, query="checkout.js") == ["fresh"]  # culprit
    assert listed(api, stream, query="level:warning") == ["widespread"]
    assert listed(api, stream, query="release:shop@1.0.0") == ["frequent"]
    assert listed(api, stream, query="is:resolved") == []
    assert listed(api, stream, query="100%_") == []  # LIKE wildcards are literal
    bad = api.call("GET", stream.path(), stream.token, params={"query": "is:sleeping"})
    assert bad.status_code == 400 and "is:sleeping" in bad.json()["detail"]


def test_short_ids_number_each_projects_issues_and_find_them(
    api: Api, stream: Stream, engine: Engine, api_url: str
) -> None:
    """Issues are numbered in their project (the seeded one first, then as made), whatever
    other projects hold; a short id searched for, or looked up, finds its issue."""
    project = stream.tenant.project.upper()
    answer = api.call("GET", stream.path(), stream.token,
                      params={"query": "", "statsPeriod": "", "sort": "new"}).json()
    assert {i["shortId"] for i in answer} == {f"{project}-{n}" for n in range(1, 6)}
    other = make_tenant(engine, "numbered")  # its first issue is its own number 1 again
    other_token = make_api_token(engine, other.org_id, other.developer_id, Role.developer)
    other_issue = api.call("GET", f"/api/0/issues/{other.issue_id}/", other_token).json()
    assert other_issue["shortId"] == f"{other.project.upper()}-1"

    # Searched for, in any case; another project's short id is just a word.
    assert listed(api, stream, query=f"{project}-3", statsPeriod="") == ["widespread"]
    assert listed(api, stream, query=f"{project.lower()}-2", statsPeriod="") == ["frequent"]
    assert listed(api, stream, query=f"{other.project.upper()}-1", statsPeriod="") == []
    # A word that only reads as a short id ("server" is base 32 too) still finds its text.
    now = datetime.now(UTC)
    make_issue(engine, other, f"Timeout: {other.project}-server down", first_seen=now,
               last_seen=now)
    by_text = api.call("GET", f"/api/0/projects/{other.org}/{other.project}/issues/",
                       other_token, params={"query": f"{other.project}-server"})
    assert [i["title"] for i in by_text.json()] == [f"Timeout: {other.project}-server down"]

    lookup = f"/api/0/organizations/{stream.tenant.org}/shortids"
    found = api.call("GET", f"{lookup}/{project.lower()}-3/", stream.token)
    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["groupId"], body["shortId"], body["projectSlug"], body["organizationSlug"]) \
        == (str(stream.ids["widespread"]), f"{project}-3", stream.tenant.project,
            stream.tenant.org)
    assert body["group"]["title"] == "RangeError: widespread"
    for missing in (f"{project}-99", f"{other.project.upper()}-1", "no-short-id-U",
                    "nodash"):
        answer = api.call("GET", f"{lookup}/{missing}/", stream.token)
        assert answer.status_code == 404 and answer.json()["detail"], missing


def test_short_ids_read_as_sentry_writes_them() -> None:
    # Crockford's base 32, as Sentry's: no I, L, O or U; read I and L as 1, O as 0.
    assert [short_id_text("web", n) for n in (1, 9, 10, 31, 32, 1025)] == [
        "WEB-1", "WEB-9", "WEB-A", "WEB-Z", "WEB-10", "WEB-101"]
    assert parse_short_id("my-app-Z") == ("my-app", 31)
    assert parse_short_id("web-1o") == parse_short_id("WEB-10") == ("web", 32)
    assert parse_short_id("web-I") == ("web", 1)
    assert parse_short_id("web-U") is None and parse_short_id("web") is None


@pytest.mark.parametrize("params", [{"sort": "loudest"}, {"statsPeriod": "forever"},
                                    {"statsPeriod": "0d"}, {"limit": "0"}, {"limit": "x"},
                                    {"cursor": "-1"}, {"query": "a\x00b"}])
def test_bad_stream_parameters_answer_400(api: Api, stream: Stream,
                                          params: dict[str, str]) -> None:
    answer = api.call("GET", stream.path(), stream.token, params=params)
    assert answer.status_code == 400
    assert next(iter(params)) in answer.json()["detail"]


def test_pages_follow_the_link_header(api: Api, stream: Stream) -> None:
    first = api.call("GET", stream.path(), stream.token, params={"limit": "2", "sort": "date"})
    assert [i["id"] for i in first.json()] == [str(stream.ids["seeded"]),
                                               str(stream.ids["widespread"])]
    following = first.links["next"]
    assert 'results="true"' in first.headers["Link"]
    second = api.call("GET", following["url"].removeprefix(api.base), stream.token)
    assert [i["id"] for i in second.json()] == [str(stream.ids["fresh"]),
                                                str(stream.ids["frequent"])]
    assert 'rel="next"; results="false"' in second.headers["Link"]


def test_triage_resolve_in_release_ignore_assign(api: Api, stream: Stream,
                                                 engine: Engine) -> None:
    tenant = stream.tenant
    path = f"/api/0/issues/{stream.ids['fresh']}/"
    resolved = api.call("PUT", path, stream.token, json={
        "status": "resolved", "statusDetails": {"inRelease": tenant.release}})
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["status"] == "resolved" and body["statusDetails"]["inRelease"] == tenant.release
    assert body["statusDetails"]["resolvedAt"] is not None
    assert listed(api, stream, query="is:resolved") == ["fresh"]

    unknown = api.call("PUT", path, stream.token, json={
        "status": "resolved", "statusDetails": {"inRelease": "no-such-release"}})
    assert unknown.status_code == 400 and "no-such-release" in unknown.json()["detail"]

    ignored = api.call("PUT", path, stream.token, json={"status": "ignored"}).json()
    assert ignored["status"] == "ignored" and ignored["statusDetails"]["inRelease"] is None

    assigned = api.call("PUT", path, stream.token, json={"assignedTo": tenant.admin}).json()
    assert assigned["assignedTo"]["email"] == tenant.admin
    me_assigned = api.call("GET", stream.path(), stream.token,
                           params={"query": f"assigned:{tenant.admin}", "statsPeriod": ""})
    assert [i["id"] for i in me_assigned.json()] == [str(stream.ids["fresh"])]

    outsider = make_tenant(engine, "outsider")
    refused = api.call("PUT", path, stream.token, json={"assignedTo": outsider.admin})
    assert refused.status_code == 400 and "not a member" in refused.json()["detail"]
    by_id = api.call("PUT", path, stream.token, json={"assignedTo": f"user:{outsider.admin_id}"})
    assert by_id.status_code == 400
    cleared = api.call("PUT", path, stream.token, json={"assignedTo": None, "status":
                                                        "unresolved"}).json()
    assert cleared["assignedTo"] is None and cleared["status"] == "unresolved"


@pytest.mark.parametrize("body", [{"status": "fixed"}, {"statusDetails": {"inRelease": "1"}},
                                  {"assignedTo": 5}, {"title": "renamed"}, [], "resolved"])
def test_bad_triage_bodies_answer_400(api: Api, stream: Stream, body: Any) -> None:
    answer = api.call("PUT", f"/api/0/issues/{stream.ids['fresh']}/", stream.token, json=body)
    assert answer.status_code == 400
    assert answer.json()["detail"]


# --- events and tags -----------------------------------------------------------------------------


def test_events_latest_and_tags(api: Api, stream: Stream, warehouse: Any) -> None:
    issue = stream.ids["widespread"]
    events = api.call("GET", f"/api/0/issues/{issue}/events/", stream.token).json()
    assert len(events) == 6
    stamps = [e["dateCreated"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    latest = api.call("GET", f"/api/0/issues/{issue}/events/latest/", stream.token).json()
    assert latest["id"] == events[0]["id"] and latest["groupID"] == str(issue)
    one = api.call("GET", f"/api/0/projects/{stream.tenant.org}/{stream.tenant.project}/events/"
                          f"{events[3]['id']}/", stream.token)
    assert one.status_code == 200 and one.json()["id"] == events[3]["id"]
    tags = {t["key"]: t for t in api.call("GET", f"/api/0/issues/{issue}/tags/",
                                          stream.token).json()}
    assert tags["release"]["totalValues"] == 6
    assert tags["release"]["topValues"][0]["value"] == "shop@2.0.0"
    assert tags["browser"]["topValues"][0]["count"] == 6
    empty = api.call("GET", f"/api/0/issues/{stream.tenant.issue_id}/events/latest/",
                     stream.token)
    assert empty.status_code == 404


def test_another_orgs_events_answer_404(api: Api, stream: Stream, engine: Engine,
                                        warehouse: Any) -> None:
    other = make_tenant(engine, "rival")
    [theirs] = insert_events(warehouse, other.org_id, other.project_id, other.issue_id, 1)
    mine = f"/api/0/projects/{stream.tenant.org}/{stream.tenant.project}/events/{theirs}/"
    assert api.call("GET", mine, stream.token).status_code == 404
    # Even an event row that claims our project id but another organization stays invisible.
    [forged] = insert_events(warehouse, other.org_id, stream.tenant.project_id,
                             stream.ids["fresh"], 1)
    forged_path = (f"/api/0/projects/{stream.tenant.org}/{stream.tenant.project}/events/"
                   f"{forged}/")
    assert api.call("GET", forged_path, stream.token).status_code == 404
    listed_ids = [e["id"] for e in api.call("GET", f"/api/0/issues/{stream.ids['fresh']}/events/",
                                            stream.token).json()]
    assert forged not in listed_ids
    # Their issue, by id, through every issue route.
    for suffix in ("", "events/", "events/latest/", "tags/", "comments/"):
        answer = api.call("GET", f"/api/0/issues/{other.issue_id}/{suffix}", stream.token)
        assert answer.status_code == 404, suffix
        assert answer.json() == {"detail": "issue not found"}
    assert api.call("GET", f"/api/0/issues/{9 * 10**18}/", stream.token).status_code == 404


# --- projects and keys ---------------------------------------------------------------------------


def test_project_settings_are_validated(api: Api, engine: Engine, api_url: str) -> None:
    tenant = make_tenant(engine, "settings")
    admin = api.access(tenant.admin)
    path = f"/api/0/projects/{tenant.org}/{tenant.project}/"
    bad_pattern = api.call("PUT", path, admin, json={"scrubbing": {"extraPatterns": ["(unclosed"]}})
    assert bad_pattern.status_code == 400
    assert "(unclosed" in bad_pattern.json()["detail"]
    assert "missing )" in bad_pattern.json()["detail"]
    bad_mode = api.call("PUT", path, admin, json={"scrubbing": {"ipMode": "scramble"}})
    assert bad_mode.status_code == 400 and "ipMode" in bad_mode.json()["detail"]
    bad_origin = api.call("PUT", path, admin, json={"allowedOrigins": ["javascript:alert(1)"]})
    assert bad_origin.status_code == 400
    good = api.call("PUT", path, admin, json={
        "scrubbing": {"ipMode": "hash", "extraPatterns": [r"ORD-\d{6}"], "safeFields": ["sku"]},
        "allowedOrigins": ["https://shop.example/", "http://localhost:3000"]})
    assert good.status_code == 200
    assert good.json()["scrubbing"] == {"ipMode": "hash", "extraPatterns": [r"ORD-\d{6}"],
                                        "safeFields": ["sku"]}
    assert good.json()["allowedOrigins"] == ["https://shop.example", "http://localhost:3000"]
    # Stored where processing reads it (orchestration.processing.scrub_configs).
    from tests.api.conftest import sql

    [(stored,)] = sql(engine, "SELECT settings FROM projects WHERE id = :id",
                      id=tenant.project_id)
    assert stored["scrubbing"] == {"ip_mode": "hash", "extra_patterns": [r"ORD-\d{6}"],
                                   "safe_fields": ["sku"]}


def test_keys_create_rotate_revoke_with_dsn(api: Api, engine: Engine, api_settings: Any,
                                            api_url: str) -> None:
    tenant = make_tenant(engine, "keys")
    admin = api.access(tenant.admin)
    keys = f"/api/0/projects/{tenant.org}/{tenant.project}/keys/"
    made = api.call("POST", keys, admin, json={"label": "web", "rateLimitPerMinute": 600}).json()
    public_url = api_settings.ingest_public_url.split("://", 1)[1]
    assert made["dsn"]["public"] == (f"http://{made['public']}@{public_url}/"
                                     f"{tenant.project_id}")
    assert made["rateLimitPerMinute"] == 600 and made["isActive"]
    rotated = api.call("POST", f"{keys}{made['id']}/rotate/", admin).json()
    assert rotated["public"] != made["public"] and rotated["label"] == "web"
    assert rotated["rateLimitPerMinute"] == 600
    listing = {k["id"]: k for k in api.call("GET", keys, admin).json()}
    assert listing[made["id"]]["isActive"] is False
    assert listing[made["id"]]["dateRevoked"] is not None
    again = api.call("POST", f"{keys}{made['id']}/rotate/", admin)
    assert again.status_code == 400 and "already revoked" in again.json()["detail"]
    assert api.call("DELETE", f"{keys}{rotated['id']}/", admin).status_code == 204
    assert api.call("GET", keys, admin).json()[-1]["isActive"] is False
    limit = api.call("PUT", f"{keys}{tenant.key_id}/", admin, json={"rateLimitPerMinute": 0})
    assert limit.status_code == 400


def test_members_keep_an_admin(api: Api, engine: Engine, api_url: str) -> None:
    tenant = make_tenant(engine, "admins")
    admin = api.access(tenant.admin)
    members = api.call("GET", f"/api/0/organizations/{tenant.org}/members/", admin).json()
    mine = next(m for m in members if m["email"] == tenant.admin)
    path = f"/api/0/organizations/{tenant.org}/members/{mine['id']}/"
    demote = api.call("PUT", path, admin, json={"role": "developer"})
    assert demote.status_code == 400 and "only admin" in demote.json()["detail"]
    assert api.call("DELETE", path, admin).status_code == 400
    dup = api.call("POST", f"/api/0/organizations/{tenant.org}/members/", admin,
                   json={"email": tenant.developer, "role": "admin"})
    assert dup.status_code == 409
    new = api.call("POST", f"/api/0/organizations/{tenant.org}/members/", admin,
                   json={"email": f"Invitee-{uuid.uuid4().hex[:6]}@Tests.local",
                         "role": "developer"}).json()
    assert new["email"] == new["email"].lower()
    assert api.login(new["email"], new["temporaryPassword"]).status_code == 200
