"""Sign-in, token refresh, sign-out, `/me`, and long-lived API tokens for CI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, jsonify, request
from flask_login import logout_user
from sqlalchemy import select

from core.models import ApiToken, AuditLogEntry, Membership, Organization, Role, User
from core.security import (
    hash_password,
    new_api_token,
    password_needs_rehash,
    verify_password,
)
from dashboards.api import schemas as s
from dashboards.api import tokens
from dashboards.api.errors import ApiError, bad_request, forbidden, not_found
from dashboards.api.routing import (
    ID,
    Access,
    Ctx,
    check_csrf,
    error_response,
    iso,
    operation,
    state,
    token_role,
)

# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = hash_password("not a real password")


def user_json(user: User) -> dict[str, Any]:
    return {"id": str(user.id), "email": user.email, "name": user.name}


def authenticate_password(ctx: Ctx, email: str, password: str, via: str = "api") -> User | None:
    """The active user with this email and password, else None. Throttled (429) per account
    and IP; failures against a real account are written to its organizations' audit logs."""
    email = email.strip().lower()
    throttle = state().throttle
    throttle.check(email, ctx.ip)
    user = ctx.db.scalar(select(User).where(User.email == email))
    valid = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not valid or not user.is_active:
        throttle.failed(email, ctx.ip)
        if user is not None:
            record_for_user(ctx, user, "auth.login_failed", via=via)
        return None
    throttle.succeeded(email, ctx.ip)
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record_for_user(ctx, user, "auth.login", via=via)
    return user


def record_for_user(ctx: Ctx, user: User, action: str, via: str) -> None:
    """Sign-ins belong to no one organization: recorded in each of the user's."""
    org_ids = ctx.db.scalars(
        select(Membership.organization_id).where(Membership.user_id == user.id)
    )
    for org_id in org_ids:
        ctx.db.add(AuditLogEntry(
            organization_id=org_id, actor_user_id=user.id, action=action, target_type="user",
            target_id=str(user.id), data={"via": via}, ip_address=ctx.ip[:45] or None,
        ))


LOGIN_BODY = s.obj({"email": {"type": "string", "maxLength": 254},
                    "password": {"type": "string", "maxLength": 1024}},
                   ["email", "password"])


@operation("POST", "/auth/login", summary="Sign in with email and password", tag="auth",
           access=Access.PUBLIC, body=LOGIN_BODY, response=s.TOKEN_PAIR, errors=(401, 429))
def login(ctx: Ctx) -> Response:
    user = authenticate_password(ctx, ctx.body["email"], ctx.body["password"])
    if user is None:
        # Answered, not raised: the transaction must commit the failure's audit entries.
        return error_response(401, "wrong email or password")
    pair = tokens.start_session(ctx.db, ctx.settings, user, ctx.ip,
                                request.headers.get("User-Agent"))
    response = jsonify(tokens.token_answer(pair, user_json(user)))
    tokens.set_auth_cookies(response, ctx.settings, pair)
    return response


REFRESH_BODY = s.obj({"refreshToken": {"type": "string", "maxLength": 200}})


@operation("POST", "/auth/refresh", summary="Exchange a refresh token for a new token pair",
           tag="auth", access=Access.PUBLIC, body=REFRESH_BODY, body_required=False,
           response=s.TOKEN_PAIR, errors=(401, 403))
def refresh(ctx: Ctx) -> Response:
    token = (ctx.body or {}).get("refreshToken")
    from_cookie = token is None
    if from_cookie:
        token = request.cookies.get(tokens.REFRESH_COOKIE)
        if not token:
            raise ApiError(401, "no refresh token: send {\"refreshToken\": ...} or the "
                           f"{tokens.REFRESH_COOKIE} cookie")
        session_id = tokens.session_of_refresh(ctx.db, token)
        if session_id is not None:
            check_csrf(session_id=session_id)
    pair = tokens.rotate(state().engine, ctx.settings, token)
    user = ctx.db.get(User, pair.user_id)
    assert user is not None
    response = jsonify(tokens.token_answer(pair, user_json(user)))
    tokens.set_auth_cookies(response, ctx.settings, pair)
    return response


@operation("POST", "/auth/logout", summary="Sign out: revoke this sign-in session",
           tag="auth", access=Access.SIGNED_IN, body=REFRESH_BODY, body_required=False,
           response=None, status=204)
def logout(ctx: Ctx) -> Response:
    caller = ctx.caller
    assert caller is not None
    if caller.session_id is None:
        raise bad_request("API tokens do not sign out; revoke one with DELETE "
                          "/api/0/organizations/<org>/api-tokens/<id>/")
    tokens.revoke_session(ctx.db, caller.session_id, "logout")
    other = (ctx.body or {}).get("refreshToken")
    if other:
        session_id = tokens.session_of_refresh(ctx.db, other, user_id=caller.user_id)
        if session_id is not None:
            tokens.revoke_session(ctx.db, session_id, "logout")
    if caller.via == "session":
        logout_user()
    response = Response(status=204)
    tokens.clear_auth_cookies(response)
    return response


@operation("GET", "/me", summary="The signed-in user and their organizations", tag="auth",
           access=Access.SIGNED_IN, response=s.ME)
def me(ctx: Ctx) -> dict[str, Any]:
    caller = ctx.caller
    assert caller is not None
    statement = (
        select(Organization.slug, Organization.name, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == caller.user_id)
        .order_by(Organization.slug)
    )
    if caller.token_org_id is not None:
        statement = statement.where(Organization.id == caller.token_org_id)
    organizations = []
    for slug, name, role in ctx.db.execute(statement):
        if caller.token_role is Role.developer:
            role = Role.developer
        organizations.append({"slug": slug, "name": name, "role": role.value})
    return {"id": str(caller.user_id), "email": caller.email, "name": caller.name,
            "organizations": organizations, "authenticatedBy": caller.via}


# --- API tokens ----------------------------------------------------------------------------------


def api_token_json(token: ApiToken, user: User) -> dict[str, Any]:
    return {
        "id": str(token.id), "name": token.name, "role": token_role(token.scopes).value,
        "dateCreated": iso(token.created_at), "lastUsed": iso(token.last_used_at),
        "expiresAt": iso(token.expires_at), "user": user_json(user),
    }


@operation("GET", "/organizations/<slug:org>/api-tokens/", summary="List API tokens (yours; "
           "an admin sees every member's)", tag="api-tokens", access=Access.MEMBER,
           response=s.array(s.API_TOKEN))
def list_api_tokens(ctx: Ctx, org: str) -> list[dict[str, Any]]:
    statement = select(ApiToken, User).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if ctx.role is not Role.admin:
        statement = statement.where(ApiToken.user_id == ctx.user_id)
    return [api_token_json(token, user) for token, user in ctx.db.execute(statement)]


NEW_TOKEN_BODY = s.obj({
    "name": s.NAME,
    "role": s.ROLE,
    "expiresInDays": {"type": "integer", "minimum": 1, "maximum": 3650},
}, ["name"])


@operation("POST", "/organizations/<slug:org>/api-tokens/", summary="Create an API token for "
           "CI, scoped to this organization and a role; the token is shown only in this answer",
           tag="api-tokens", access=Access.MEMBER, body=NEW_TOKEN_BODY,
           response=s.NEW_API_TOKEN, status=201)
def create_api_token(ctx: Ctx, org: str) -> dict[str, Any]:
    assert ctx.role is not None
    role = Role(ctx.body.get("role", ctx.role.value))
    if role is Role.admin and ctx.role is not Role.admin:
        raise forbidden("a developer cannot create an admin token")
    days = ctx.body.get("expiresInDays")
    plaintext, token_hash = new_api_token()
    token = ApiToken(
        user_id=ctx.user_id, name=ctx.body["name"].strip(), token_hash=token_hash,
        scopes=[f"org:{role.value}"],
        expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
    )
    ctx.db.add(token)
    ctx.db.flush()
    ctx.db.refresh(token)
    ctx.audit("api_token.create", "api_token", token.id,
              after={"name": token.name, "role": role.value})
    user = ctx.db.get(User, ctx.user_id)
    assert user is not None
    return {**api_token_json(token, user), "token": plaintext}


@operation("DELETE", f"/organizations/<slug:org>/api-tokens/<{ID}:token_id>/",
           summary="Revoke an API token (your own; an admin may revoke any)", tag="api-tokens",
           access=Access.MEMBER, response=None, status=204)
def revoke_api_token(ctx: Ctx, org: str, token_id: int) -> None:
    token = ctx.db.get(ApiToken, token_id)
    if token is None or (ctx.role is not Role.admin and token.user_id != ctx.user_id):
        raise not_found("API token")
    ctx.audit("api_token.revoke", "api_token", token.id,
              before={"name": token.name, "role": token_role(token.scopes).value,
                      "userId": str(token.user_id)})
    ctx.db.delete(token)
