"""Organizations and their members: list, add (invite), change role, remove."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select

from core.models import Membership, Organization, Role, User
from core.security import hash_password
from dashboards.api import schemas as s
from dashboards.api.auth import user_json
from dashboards.api.errors import ApiError, bad_request, not_found
from dashboards.api.routing import ID, Access, Ctx, OrgRef, iso, membership, operation


def organization_json(org: OrgRef | Organization, role: Role) -> dict[str, Any]:
    created = org.created_at
    return {"id": str(org.id), "slug": org.slug, "name": org.name, "dateCreated": iso(created),
            "role": role.value}


@operation("GET", "/organizations/", summary="Organizations you are a member of",
           tag="organizations", access=Access.SIGNED_IN, response=s.array(s.ORGANIZATION))
def list_organizations(ctx: Ctx) -> list[dict[str, Any]]:
    caller = ctx.caller
    assert caller is not None
    slugs = ctx.db.scalars(
        select(Organization.slug)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == caller.user_id)
        .order_by(Organization.slug)
    ).all()
    answer = []
    for slug in slugs:
        found = membership(caller, slug=slug)  # applies an API token's org and role
        if found is not None:
            answer.append(organization_json(*found))
    return answer


@operation("GET", "/organizations/<slug:org>/", summary="One organization", tag="organizations",
           access=Access.MEMBER, response=s.ORGANIZATION)
def get_organization(ctx: Ctx, org: str) -> dict[str, Any]:
    assert ctx.org is not None and ctx.role is not None
    return organization_json(ctx.org, ctx.role)


@operation("PUT", "/organizations/<slug:org>/", summary="Rename an organization",
           tag="organizations", access=Access.ADMIN, body=s.obj({"name": s.NAME}, ["name"]),
           response=s.ORGANIZATION)
def update_organization(ctx: Ctx, org: str) -> dict[str, Any]:
    row = ctx.db.get(Organization, ctx.org_id)
    assert row is not None and ctx.role is not None
    before, row.name = row.name, ctx.body["name"].strip()
    if before != row.name:
        ctx.audit("org.edit", "organization", row.id, before={"name": before},
                  after={"name": row.name})
    return organization_json(row, ctx.role)


# --- members -------------------------------------------------------------------------------------


def member_json(member: Membership, user: User) -> dict[str, Any]:
    return {"id": str(member.id), "email": user.email, "name": user.name,
            "role": member.role.value, "dateCreated": iso(member.created_at),
            "user": user_json(user)}


@operation("GET", "/organizations/<slug:org>/members/", summary="Members and their roles",
           tag="members", access=Access.MEMBER, response=s.array(s.MEMBER))
def list_members(ctx: Ctx, org: str) -> list[dict[str, Any]]:
    rows = ctx.db.execute(
        select(Membership, User).join(User, User.id == Membership.user_id).order_by(User.email)
    )
    return [member_json(member, user) for member, user in rows]


NEW_MEMBER_BODY = s.obj({
    "email": s.EMAIL,
    "role": s.ROLE,
    "name": s.NAME,
    "password": s.PASSWORD,
}, ["email", "role"])


@operation("POST", "/organizations/<slug:org>/members/", summary="Add a member (an existing "
           "user, or a new one with the given or a one-time generated password)", tag="members",
           access=Access.ADMIN, body=NEW_MEMBER_BODY, response=s.NEW_MEMBER, status=201,
           errors=(409,))
def add_member(ctx: Ctx, org: str) -> dict[str, Any]:
    email = ctx.body["email"].strip().lower()
    role = Role(ctx.body["role"])
    user = ctx.db.scalar(select(User).where(User.email == email))
    temporary = None
    if user is None:
        password = ctx.body.get("password")
        if password is None:
            temporary = password = secrets.token_urlsafe(12)  # shown once, in this answer
        user = User(email=email, name=ctx.body.get("name", email.split("@")[0]).strip(),
                    password_hash=hash_password(password))
        ctx.db.add(user)
        ctx.db.flush()
    elif ctx.db.scalar(select(Membership.id).where(Membership.user_id == user.id)) is not None:
        raise ApiError(409, f"{email} is already a member of this organization")
    member = Membership(user_id=user.id, role=role)
    ctx.db.add(member)
    ctx.db.flush()
    ctx.db.refresh(member)
    ctx.audit("member.add", "member", member.id, after={"email": email, "role": role.value},
              userCreated=temporary is not None or "password" in ctx.body)
    return {**member_json(member, user), "temporaryPassword": temporary}


def _member(ctx: Ctx, member_id: int) -> tuple[Membership, User]:
    row = ctx.db.execute(
        select(Membership, User).join(User, User.id == Membership.user_id)
        .where(Membership.id == member_id)
    ).first()
    if row is None:
        raise not_found("member")
    return row[0], row[1]


def _refuse_losing_last_admin(ctx: Ctx, member: Membership) -> None:
    if member.role is not Role.admin:
        return
    admins = ctx.db.scalar(
        select(func.count()).select_from(Membership).where(Membership.role == Role.admin)
    )
    if admins <= 1:
        raise bad_request("this is the organization's only admin; make another member admin "
                          "first")


@operation("PUT", f"/organizations/<slug:org>/members/<{ID}:member_id>/",
           summary="Change a member's role", tag="members", access=Access.ADMIN,
           body=s.obj({"role": s.ROLE}, ["role"]), response=s.MEMBER)
def update_member(ctx: Ctx, org: str, member_id: int) -> dict[str, Any]:
    member, user = _member(ctx, member_id)
    role = Role(ctx.body["role"])
    if role is not member.role:
        if role is Role.developer:
            _refuse_losing_last_admin(ctx, member)
        before, member.role = member.role, role
        ctx.audit("member.role_change", "member", member.id, before={"role": before.value},
                  after={"role": role.value}, email=user.email)
    return member_json(member, user)


@operation("DELETE", f"/organizations/<slug:org>/members/<{ID}:member_id>/",
           summary="Remove a member (their API tokens for this organization go with them)",
           tag="members", access=Access.ADMIN, response=None, status=204, errors=(400,))
def remove_member(ctx: Ctx, org: str, member_id: int) -> None:
    member, user = _member(ctx, member_id)
    _refuse_losing_last_admin(ctx, member)
    ctx.audit("member.remove", "member", member.id,
              before={"email": user.email, "role": member.role.value})
    ctx.db.delete(member)
