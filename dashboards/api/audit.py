"""The audit log, for admins: who did what, when, from where, with before/after.

Entries are written by the routes that change things (`Ctx.audit`, in the same transaction as
the change) and by sign-in. There is no route to change or delete one, and the database
refuses UPDATE and DELETE on the table (migration 0002).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from core.models import AuditLogEntry, User
from dashboards.api import schemas as s
from dashboards.api.auth import user_json
from dashboards.api.errors import bad_request
from dashboards.api.issues import CURSOR, page_link
from dashboards.api.routing import Access, Ctx, QueryParam, iso, operation

# Every action the product records, for the `options` of the answer (a filter menu).
ACTIONS = (
    "auth.login", "auth.login_failed", "org.edit", "member.add", "member.role_change",
    "member.remove", "project.create", "project.settings_change", "key.create", "key.edit",
    "key.revoke", "key.rotate", "api_token.create", "api_token.revoke", "issue.resolve",
    "issue.unresolve", "issue.ignore", "issue.assign", "issue.unassign",
)

DATE = {"type": "string", "maxLength": 40}
AUDIT_QUERY = (
    QueryParam("event", {"type": "string", "maxLength": 64}, "Only this action, e.g. "
               "member.role_change"),
    QueryParam("actor", {"type": "string", "maxLength": 254}, "Only actions of this user "
               "(email or id)"),
    QueryParam("start", DATE, "Only entries at or after this ISO 8601 time"),
    QueryParam("end", DATE, "Only entries before this ISO 8601 time"),
    CURSOR,
    QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size", 100),
)


def _time(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 time, e.g. 2026-11-27T10:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@operation("GET", "/organizations/<slug:org>/audit-logs/", summary="The audit log, newest "
           "first; filter by event (action), actor, start and end", tag="audit",
           access=Access.ADMIN, query=AUDIT_QUERY, response=s.AUDIT_LOG)
def audit_log(ctx: Ctx, org: str) -> dict[str, Any]:
    args = ctx.args
    statement = select(AuditLogEntry, User).outerjoin(User, User.id == AuditLogEntry.actor_user_id)
    if args["event"] is not None:
        statement = statement.where(AuditLogEntry.action == args["event"])
    if args["actor"] is not None:
        actor = args["actor"].strip()
        statement = statement.where(
            AuditLogEntry.actor_user_id == int(actor) if actor.isdigit() and len(actor) < 19
            else User.email == actor.lower()
        )
    start, end = _time("start", args["start"]), _time("end", args["end"])
    if start is not None:
        statement = statement.where(AuditLogEntry.created_at >= start)
    if end is not None:
        statement = statement.where(AuditLogEntry.created_at < end)
    offset, limit = args["cursor"], args["limit"]
    rows = list(ctx.db.execute(
        statement.order_by(AuditLogEntry.created_at.desc(), AuditLogEntry.id.desc())
        .offset(offset).limit(limit + 1)
    ))
    ctx.headers["Link"] = page_link(offset, limit, len(rows) > limit)
    return {
        "rows": [
            {"id": str(entry.id), "event": entry.action,
             "actor": user_json(user) if user else None, "ipAddress": entry.ip_address,
             "targetType": entry.target_type, "targetObject": entry.target_id,
             "dateCreated": iso(entry.created_at), "data": entry.data or {}}
            for entry, user in rows[:limit]
        ],
        "options": list(ACTIONS),
    }
