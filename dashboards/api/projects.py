"""Projects, their settings (allowed origins, PII scrubbing) and their DSN keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from core.models import Project, ProjectKey
from core.security import dsn_for, new_public_key
from dashboards.api import schemas as s
from dashboards.api.errors import ApiError, bad_request, not_found
from dashboards.api.routing import ID, Access, Ctx, iso, operation
from pipelines.scrubbing import ScrubConfig

PROJECT = "/projects/<slug:org>/<slug:project>"


def project_of(ctx: Ctx, slug: str) -> Project:
    found = ctx.db.scalar(select(Project).where(Project.slug == slug))
    if found is None:
        raise not_found("project")
    return found


def scrubbing_json(project: Project) -> dict[str, Any]:
    options = (project.settings or {}).get("scrubbing") or {}
    return {"ipMode": options.get("ip_mode", "keep"),
            "extraPatterns": list(options.get("extra_patterns", [])),
            "safeFields": list(options.get("safe_fields", []))}


def project_json(ctx: Ctx, project: Project) -> dict[str, Any]:
    assert ctx.org is not None
    return {
        "id": str(project.id), "slug": project.slug, "name": project.name,
        "platform": project.platform, "dateCreated": iso(project.created_at),
        "allowedOrigins": list(project.allowed_origins or []),
        "scrubbing": scrubbing_json(project),
        "organization": {"id": str(ctx.org.id), "slug": ctx.org.slug},
    }


@operation("GET", "/organizations/<slug:org>/projects/", summary="The organization's projects",
           tag="projects", access=Access.MEMBER, response=s.array(s.PROJECT))
def list_projects(ctx: Ctx, org: str) -> list[dict[str, Any]]:
    return [project_json(ctx, p) for p in ctx.db.scalars(select(Project).order_by(Project.slug))]


PLATFORM = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9_.-]+$"}


@operation("POST", "/organizations/<slug:org>/projects/", summary="Create a project with a "
           "first DSN key", tag="projects", access=Access.ADMIN,
           body=s.obj({"name": s.NAME, "slug": s.SLUG, "platform": PLATFORM}, ["name"]),
           response=s.PROJECT, status=201, errors=(409,))
def create_project(ctx: Ctx, org: str) -> dict[str, Any]:
    name = ctx.body["name"].strip()
    slug = ctx.body.get("slug") or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50]
    if not slug:
        raise bad_request("the name has no letters or digits to make a slug from; send 'slug'")
    if ctx.db.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        raise ApiError(409, f"a project with slug {slug!r} already exists")
    project = Project(slug=slug, name=name, platform=ctx.body.get("platform", "javascript"),
                      allowed_origins=["*"], settings={})
    ctx.db.add(project)
    ctx.db.flush()
    ctx.db.add(ProjectKey(project_id=project.id, public_key=new_public_key(), label="Default"))
    ctx.db.flush()
    ctx.db.refresh(project)
    ctx.audit("project.create", "project", project.id, after={"slug": slug, "name": name})
    return project_json(ctx, project)


@operation("GET", f"{PROJECT}/", summary="One project with its settings", tag="projects",
           access=Access.MEMBER, response=s.PROJECT)
def get_project(ctx: Ctx, org: str, project: str) -> dict[str, Any]:
    return project_json(ctx, project_of(ctx, project))


ORIGIN = {"type": "string", "maxLength": 255,
          "pattern": r"^(\*|https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?)$"}
SCRUBBING_BODY = s.obj({
    "ipMode": {"type": "string", "enum": ["keep", "hash", "drop"]},
    "extraPatterns": {**s.array({"type": "string", "minLength": 1, "maxLength": 500}),
                      "maxItems": 50},
    "safeFields": {**s.array({"type": "string", "minLength": 1, "maxLength": 200}),
                   "maxItems": 100},
})
PROJECT_BODY = s.obj({
    "name": s.NAME,
    "platform": PLATFORM,
    "allowedOrigins": {**s.array(ORIGIN), "maxItems": 100},
    "scrubbing": SCRUBBING_BODY,
})


@operation("PUT", f"{PROJECT}/", summary="Change a project's name, allowed origins or PII "
           "scrubbing options (ipMode, extraPatterns as regular expressions, safeFields)",
           tag="projects", access=Access.ADMIN, body=PROJECT_BODY, response=s.PROJECT)
def update_project(ctx: Ctx, org: str, project: str) -> dict[str, Any]:
    row = project_of(ctx, project)
    before = {"name": row.name, "platform": row.platform,
              "allowedOrigins": list(row.allowed_origins or []), "scrubbing": scrubbing_json(row)}
    if "name" in ctx.body:
        row.name = ctx.body["name"].strip()
    if "platform" in ctx.body:
        row.platform = ctx.body["platform"]
    if "allowedOrigins" in ctx.body:
        row.allowed_origins = list(dict.fromkeys(o.rstrip("/") for o in ctx.body["allowedOrigins"]))
    if "scrubbing" in ctx.body:
        merged = {**scrubbing_json(row), **ctx.body["scrubbing"]}
        try:
            # The pipeline's own check, so what is accepted here is what processing can run.
            ScrubConfig(ip_mode=merged["ipMode"], extra_patterns=tuple(merged["extraPatterns"]),
                        safe_fields=tuple(merged["safeFields"]))
        except ValueError as exc:
            raise bad_request(f"invalid scrubbing option: {exc}") from None
        row.settings = {**(row.settings or {}), "scrubbing": {
            "ip_mode": merged["ipMode"], "extra_patterns": merged["extraPatterns"],
            "safe_fields": merged["safeFields"]}}
        flag_modified(row, "settings")
    after = {"name": row.name, "platform": row.platform,
             "allowedOrigins": list(row.allowed_origins or []), "scrubbing": scrubbing_json(row)}
    if after != before:
        changed = [k for k in after if after[k] != before[k]]
        ctx.audit("project.settings_change", "project", row.id,
                  before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return project_json(ctx, row)


# --- DSN keys ----------------------------------------------------------------------------------


def key_json(key: ProjectKey) -> dict[str, Any]:
    settings = current_app.extensions["pulsetrace_api"].settings
    return {
        "id": str(key.id), "label": key.label, "public": key.public_key,
        "isActive": key.is_active and key.revoked_at is None,
        "rateLimitPerMinute": key.rate_limit_per_minute, "dateCreated": iso(key.created_at),
        "dateRevoked": iso(key.revoked_at), "projectId": str(key.project_id),
        "dsn": {"public": dsn_for(settings.ingest_public_url, key.public_key, key.project_id)},
    }


def key_of(ctx: Ctx, project: Project, key_id: int) -> ProjectKey:
    key = ctx.db.scalar(select(ProjectKey).where(ProjectKey.id == key_id,
                                                 ProjectKey.project_id == project.id))
    if key is None:
        raise not_found("key")
    return key


LABEL = {"type": "string", "minLength": 1, "maxLength": 200}
RATE_LIMIT = s.nullable({"type": "integer", "minimum": 1, "maximum": 1_000_000_000})
KEY_BODY = s.obj({"label": LABEL, "rateLimitPerMinute": RATE_LIMIT})


@operation("GET", f"{PROJECT}/keys/", summary="The project's DSN keys", tag="keys",
           access=Access.MEMBER, response=s.array(s.KEY))
def list_keys(ctx: Ctx, org: str, project: str) -> list[dict[str, Any]]:
    row = project_of(ctx, project)
    keys = ctx.db.scalars(select(ProjectKey).where(ProjectKey.project_id == row.id)
                          .order_by(ProjectKey.id))
    return [key_json(k) for k in keys]


@operation("POST", f"{PROJECT}/keys/", summary="Create a DSN key", tag="keys",
           access=Access.ADMIN, body=KEY_BODY, body_required=False, response=s.KEY, status=201)
def create_key(ctx: Ctx, org: str, project: str) -> dict[str, Any]:
    row = project_of(ctx, project)
    key = ProjectKey(project_id=row.id, public_key=new_public_key(),
                     label=ctx.body.get("label", "Default"),
                     rate_limit_per_minute=ctx.body.get("rateLimitPerMinute"))
    ctx.db.add(key)
    ctx.db.flush()
    ctx.db.refresh(key)
    ctx.audit("key.create", "key", key.id, after={"label": key.label, "public": key.public_key,
                                                  "rateLimitPerMinute": key.rate_limit_per_minute})
    return key_json(key)


@operation("PUT", f"{PROJECT}/keys/<{ID}:key_id>/", summary="Change a key's label or rate "
           "limit (events per minute; null for the server default)", tag="keys",
           access=Access.ADMIN, body=KEY_BODY, response=s.KEY)
def update_key(ctx: Ctx, org: str, project: str, key_id: int) -> dict[str, Any]:
    key = key_of(ctx, project_of(ctx, project), key_id)
    before = {"label": key.label, "rateLimitPerMinute": key.rate_limit_per_minute}
    if "label" in ctx.body:
        key.label = ctx.body["label"]
    if "rateLimitPerMinute" in ctx.body:
        key.rate_limit_per_minute = ctx.body["rateLimitPerMinute"]
    after = {"label": key.label, "rateLimitPerMinute": key.rate_limit_per_minute}
    if after != before:
        ctx.audit("key.edit", "key", key.id, before=before, after=after)
    return key_json(key)


def _revoke(key: ProjectKey) -> None:
    key.is_active = False
    key.revoked_at = datetime.now(UTC)


@operation("DELETE", f"{PROJECT}/keys/<{ID}:key_id>/", summary="Revoke a key: the ingest "
           "refuses it within seconds (its key cache)", tag="keys", access=Access.ADMIN,
           response=None, status=204)
def revoke_key(ctx: Ctx, org: str, project: str, key_id: int) -> None:
    key = key_of(ctx, project_of(ctx, project), key_id)
    if key.revoked_at is None:
        _revoke(key)
        ctx.audit("key.revoke", "key", key.id, before={"isActive": True},
                  after={"isActive": False}, public=key.public_key)


@operation("POST", f"{PROJECT}/keys/<{ID}:key_id>/rotate/", summary="Replace a key: a new key "
           "with the same label and rate limit; the old one is revoked", tag="keys",
           access=Access.ADMIN, response=s.KEY, status=201, errors=(400,))
def rotate_key(ctx: Ctx, org: str, project: str, key_id: int) -> dict[str, Any]:
    old = key_of(ctx, project_of(ctx, project), key_id)
    if old.revoked_at is not None:
        raise bad_request("this key is already revoked; create a new key instead")
    _revoke(old)
    new = ProjectKey(project_id=old.project_id, public_key=new_public_key(), label=old.label,
                     rate_limit_per_minute=old.rate_limit_per_minute)
    ctx.db.add(new)
    ctx.db.flush()
    ctx.db.refresh(new)
    ctx.audit("key.rotate", "key", old.id, before={"public": old.public_key},
              after={"public": new.public_key, "id": str(new.id)})
    return key_json(new)
