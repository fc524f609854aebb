"""How every management-API route is declared, authenticated, authorized and documented.

A route is declared once with `@operation(...)`: its method and path, who may call it
(`Access`), the JSON schema of its body, its query parameters and its answer. From that one
declaration the wrapper here

1. resolves the caller: `Authorization: Bearer <JWT or ptk_ API token>`, the `pt_access`
   cookie, or a flask-login session; no caller on a protected route -> 401;
2. checks CSRF on cookie-authenticated writes (403);
3. finds the organization the route acts in (from `<org>` or from `<issue_id>`) among the
   caller's memberships; not a member (or an API token of another org) -> 404, exactly as for
   an object that does not exist;
4. checks the caller's role against the route's (403);
5. validates the query and the body against their schemas (400 saying what is wrong);
6. runs the handler in ONE transaction on a tenant session of that organization, so every ORM
   query is filtered by it and an audit entry commits with the change it records.

`dashboards.api.openapi` builds `/api/0/openapi.json` from the same declarations, so the
document cannot drift from the routes.
"""

from __future__ import annotations

import enum
import functools
import hmac
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_login import current_user
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from sqlalchemy import Engine, and_, select
from sqlalchemy.orm import Session
from werkzeug.routing import BaseConverter

from core.blobs import BlobStore
from core.db import system_session, tenant_session
from core.models import ApiToken, AuditLogEntry, Issue, Membership, Organization, Role, User
from core.security import API_TOKEN_PREFIX, hash_api_token
from core.settings import Settings
from dashboards.api import tokens
from dashboards.api.errors import ApiError, bad_request, forbidden, not_found, unauthenticated
from dashboards.api.throttle import LoginThrottle
from ingest.state import Network, resolve_client_ip

bp = Blueprint("api", __name__, url_prefix="/api/0")

MAX_ID = 2**63 - 1  # BIGINT: larger ids cannot exist, and must not reach PostgreSQL


class Access(enum.Enum):
    PUBLIC = "public"  # no authentication (sign-in, the OpenAPI document)
    SIGNED_IN = "signed_in"  # any authenticated caller, not tied to one organization
    MEMBER = "developer"  # a member of the route's organization, any role
    ADMIN = "admin"  # an admin of the route's organization


_RANK = {Role.developer: 1, Role.admin: 2}


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    throttle: LoginThrottle
    blobs: BlobStore  # attachments
    trusted_proxies: list[Network] = field(default_factory=list)


def state() -> ApiState:
    return current_app.extensions["pulsetrace_api"]


def client_ip() -> str:
    # Behind a trusted reverse proxy the client is in X-Forwarded-For (same rule as ingest).
    return resolve_client_ip(
        request.remote_addr, request.headers.get("X-Forwarded-For"), state().trusted_proxies
    )


# --- path converters -----------------------------------------------------------------------


class SlugConverter(BaseConverter):
    """Organization and project slugs; anything else is a 404 before any query runs."""

    regex = r"[A-Za-z0-9_\-]{1,50}"


class EventIdConverter(BaseConverter):
    regex = r"[0-9a-fA-F]{32}"

    def to_python(self, value: str) -> str:
        return value.lower()


CONVERTERS: dict[str, type[BaseConverter]] = {"slug": SlugConverter, "eventid": EventIdConverter}
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "slug": {"type": "string", "pattern": f"^{SlugConverter.regex}$"},
    "eventid": {"type": "string", "pattern": f"^{EventIdConverter.regex}$"},
    "int": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "uuid": {"type": "string", "format": "uuid"},
}
ID = f"int(min=1, max={MAX_ID})"  # the converter of every numeric id in a path


# --- the caller ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    user_id: int
    email: str
    name: str
    via: str  # "jwt" (bearer), "cookie" (pt_access), "session" (flask-login), "api_token"
    session_id: int | None = None  # the sign-in session of a JWT or flask-login caller
    token_id: int | None = None
    token_org_id: int | None = None  # an API token works in its organization only
    token_role: Role | None = None

    @property
    def by_cookie(self) -> bool:
        return self.via in ("cookie", "session")


def _user_caller(user_id: int, session_id: int, via: str) -> Caller:
    with Session(state().engine) as session:
        user = session.get(User, user_id)
        if user is None or not user.is_active:
            raise unauthenticated("this user no longer exists or is deactivated")
        if not tokens.session_is_live(session, session_id, user_id):
            raise unauthenticated("this sign-in session has ended (signed out or revoked); "
                                  "sign in again")
        return Caller(user.id, user.email, user.name, via, session_id=session_id)


def _api_token_caller(plaintext: str) -> Caller:
    now = datetime.now(UTC)
    with system_session(state().engine) as session, session.begin():
        row = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_api_token(plaintext))
        ).first()
        if row is None:
            raise unauthenticated("unknown or revoked API token")
        token, user = row
        if token.expires_at is not None and token.expires_at <= now:
            raise unauthenticated("this API token has expired")
        if not user.is_active:
            raise unauthenticated("this API token's user is deactivated")
        # Written at most once a minute: a CI loop must not turn every read into a write.
        if token.last_used_at is None or token.last_used_at < now - timedelta(minutes=1):
            token.last_used_at = now
        return Caller(
            user.id, user.email, user.name, "api_token", token_id=token.id,
            token_org_id=token.organization_id, token_role=token_role(token.scopes),
        )


def token_role(scopes: list[str]) -> Role:
    """The role an API token acts with: `org:admin` or `org:developer` among its scopes."""
    return Role.admin if "org:admin" in (scopes or []) else Role.developer


def resolve_caller() -> Caller | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        if value.startswith(API_TOKEN_PREFIX):
            return _api_token_caller(value)
        claims = tokens.verify_access_token(state().settings, value)
        return _user_caller(claims.user_id, claims.session_id, "jwt")
    cookie = request.cookies.get(tokens.ACCESS_COOKIE)
    if cookie:
        claims = tokens.verify_access_token(state().settings, cookie)
        return _user_caller(claims.user_id, claims.session_id, "cookie")
    if current_user.is_authenticated:
        return Caller(current_user.id, current_user.email, current_user.name, "session",
                      session_id=current_user.session_id)
    return None


def check_csrf(caller: Caller | None = None, session_id: int | None = None) -> None:
    """Cookie-authenticated writes must echo the CSRF token (cookie `pt_csrf`) in a header: a
    cross-site form can send cookies but cannot read one to copy it."""
    sid = caller.session_id if caller is not None else session_id
    sent = request.headers.get(tokens.CSRF_HEADER, "")
    expected = tokens.csrf_token_for(state().settings, sid) if sid is not None else None
    if expected is None or not hmac.compare_digest(sent, expected):
        raise forbidden(f"CSRF check failed: cookie-authenticated writes must send the "
                        f"{tokens.CSRF_HEADER} header with the value of the "
                        f"{tokens.CSRF_COOKIE} cookie")


# --- the organization a route acts in --------------------------------------------------------


@dataclass(frozen=True)
class OrgRef:
    id: int
    slug: str
    name: str
    created_at: datetime


def membership(caller: Caller, *, slug: str | None = None,
               org_id: int | None = None) -> tuple[OrgRef, Role] | None:
    """The organization (by slug or id) and the caller's role in it; None if not a member."""
    statement = select(Organization, Membership.role).join(
        Membership,
        and_(Membership.organization_id == Organization.id,
             Membership.user_id == caller.user_id),
    )
    statement = statement.where(
        Organization.slug == slug if slug is not None else Organization.id == org_id
    )
    # System session: the lookup spans organizations, filtered here by the caller's membership.
    with system_session(state().engine) as session:
        row = session.execute(statement).first()
    if row is None:
        return None
    org, role = row
    if caller.token_org_id is not None:
        if org.id != caller.token_org_id:
            return None
        if caller.token_role is not None and _RANK[caller.token_role] < _RANK[role]:
            role = caller.token_role  # a token never acts above the role it was given
    return OrgRef(org.id, org.slug, org.name, org.created_at), role


def _org_of_issue(issue_id: int) -> int | None:
    with system_session(state().engine) as session:
        return session.scalar(select(Issue.organization_id).where(Issue.id == issue_id))


# --- the request context handed to handlers ------------------------------------------------


@dataclass
class Ctx:
    caller: Caller | None
    org: OrgRef | None
    role: Role | None
    db: Session
    body: Any
    args: dict[str, Any]
    ip: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return state().settings

    @property
    def user_id(self) -> int:
        assert self.caller is not None
        return self.caller.user_id

    @property
    def org_id(self) -> int:
        assert self.org is not None
        return self.org.id

    def audit(self, action: str, target_type: str | None, target_id: object,
              before: Any = None, after: Any = None, **data: Any) -> None:
        """Record an action in this request's transaction: it commits with the change."""
        if before is not None or after is not None:
            data = {"before": before, "after": after, **data}
        self.db.add(AuditLogEntry(
            organization_id=self.org_id,
            actor_user_id=self.caller.user_id if self.caller else None,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            data=data,
            ip_address=self.ip[:45] or None,
        ))


# --- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str
    default: Any = None


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str  # the Flask rule under /api/0
    endpoint: str
    summary: str
    tag: str
    access: Access
    body: dict[str, Any] | None
    body_required: bool
    query: tuple[QueryParam, ...]
    status: int
    response: dict[str, Any] | None  # JSON schema of the success answer; None: no body
    errors: tuple[int, ...]
    binary: bool = False  # the answer may also be bytes (application/octet-stream)


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    access: Access,
    response: dict[str, Any] | None,
    status: int = 200,
    body: dict[str, Any] | None = None,
    query: tuple[QueryParam, ...] = (),
    errors: tuple[int, ...] = (),
    body_required: bool = True,
    binary: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    body_validator = Draft202012Validator(body) if body is not None else None

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        endpoint = f"{handler.__module__.rsplit('.', 1)[-1]}_{handler.__name__}"

        @functools.wraps(handler)
        def view(**path: Any) -> Response:
            ctx_headers: dict[str, str] = {}
            with _context(access, path, body_validator, body_required, query,
                          ctx_headers) as ctx:
                result = handler(ctx, **path)
            if isinstance(result, Response):
                response_obj = result
            elif status == 204:
                response_obj = Response(status=204)
            else:
                response_obj = jsonify(result)
                response_obj.status_code = status
            response_obj.headers.update(ctx_headers)
            return response_obj

        bp.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=[method])
        implied = {401, 403, 404} if access in (Access.MEMBER, Access.ADMIN) else set()
        if access is Access.SIGNED_IN:
            implied = {401}
        if body is not None or query:
            implied.add(400)
        if access is not Access.PUBLIC and method not in ("GET", "HEAD"):
            implied.add(403)  # CSRF
        OPERATIONS.append(Operation(
            method=method, rule=rule, endpoint=f"api.{endpoint}", summary=summary, tag=tag,
            access=access, body=body, body_required=body_required, query=query, status=status,
            response=response,
            errors=tuple(sorted(implied | set(errors))), binary=binary,
        ))
        return view

    return decorate


@contextmanager
def _context(access: Access, path: dict[str, Any], body_validator: Draft202012Validator | None,
             body_required: bool, query: tuple[QueryParam, ...],
             headers: dict[str, str]) -> Iterator[Ctx]:
    api = state()
    caller = resolve_caller() if access is not Access.PUBLIC else None
    if access is not Access.PUBLIC and caller is None:
        raise unauthenticated()
    if caller is not None and caller.by_cookie and request.method not in ("GET", "HEAD"):
        check_csrf(caller)

    org: OrgRef | None = None
    role: Role | None = None
    if access in (Access.MEMBER, Access.ADMIN):
        assert caller is not None
        if "org" in path:
            found = membership(caller, slug=path["org"])
            what = "organization"
        else:
            org_id = _org_of_issue(path["issue_id"])
            found = membership(caller, org_id=org_id) if org_id is not None else None
            what = "issue"
        if found is None:
            raise not_found(what)
        org, role = found
        if access is Access.ADMIN and role is not Role.admin:
            raise forbidden("only an admin of this organization may do this; your role is "
                            f"{role.value}")

    args = _parse_query(query)
    body = None
    if body_validator is not None:
        body = _parse_body(body_validator) if body_required or request.content_length else {}
    session = (
        tenant_session(api.engine, org.id, expire_on_commit=False) if org is not None
        # Routes outside one organization (sign-in, /me) filter by the caller themselves.
        else system_session(api.engine, expire_on_commit=False)
    )
    with session, session.begin():
        yield Ctx(caller, org, role, session, body, args, client_ip(), headers)


def _has_nul(value: Any) -> bool:
    # PostgreSQL text cannot hold NUL: refuse it here with a 400 rather than fail there.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _where(path: Any) -> str:
    parts = [str(p) for p in path]
    return f"'{'.'.join(parts)}'" if parts else "the body"


def _parse_body(validator: Draft202012Validator) -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise bad_request("send a JSON object as the body, with Content-Type: application/json")
    error = best_match(validator.iter_errors(body))
    if error is not None:
        raise bad_request(f"invalid {_where(error.absolute_path)}: {error.message}")
    if _has_nul(body):
        raise bad_request("strings in the body must not contain NUL characters")
    return body


_INTEGER = re.compile(r"^-?[0-9]{1,19}$")


def _parse_query(params: tuple[QueryParam, ...]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for param in params:
        raw = request.args.get(param.name)
        if raw is None:
            args[param.name] = param.default
            continue
        if "\x00" in raw:
            raise bad_request(f"query parameter {param.name!r} must not contain NUL characters")
        value: Any = raw
        if param.schema.get("type") == "integer":
            if not _INTEGER.match(raw.strip()):
                raise bad_request(f"query parameter {param.name!r} must be an integer")
            value = int(raw)
        error = best_match(Draft202012Validator(param.schema).iter_errors(value))
        if error is not None:
            raise bad_request(f"invalid query parameter {param.name!r}: {error.message}")
        args[param.name] = value
    return args


# --- answers -----------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"detail": detail})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def install(app: Flask) -> None:
    """Converters, the blueprint and JSON errors for everything under /api/0."""
    app.url_map.converters.update(CONVERTERS)
    app.register_blueprint(bp)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.detail, exc.headers)
