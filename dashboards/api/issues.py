"""Issues and their events: the issue stream, triage (status, resolved-in-release, assignee,
comments), an issue's events and tags, and one event.

Issues live in PostgreSQL (tenant session); events in ClickHouse `events`, where every query
here is filtered by `organization_id` AND `project_id` as bound parameters. `events` is a
ReplacingMergeTree, so reads use FINAL: a reprocessed event counts once, with its latest
grouping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import request
from sqlalchemy import Select, func, or_, select

from core.models import (
    Issue,
    IssueComment,
    IssueStatus,
    IssueSubstatus,
    Membership,
    Project,
    Release,
    User,
)
from core.warehouse import warehouse_client
from dashboards.api import schemas as s
from dashboards.api.auth import user_json
from dashboards.api.errors import ApiError, bad_request, not_found
from dashboards.api.projects import PROJECT, project_of
from dashboards.api.routing import ID, Access, Ctx, QueryParam, SlugConverter, iso, operation
from pipelines.processed import CLOCK_DRIFT, FUTURE_TIMESTAMP, PAST_TIMESTAMP

CLICKHOUSE_ERRORS = (503,)
MAX_CANDIDATES = 10_000  # issues ranked by count/users in one go (freq and user sorts)


def clickhouse(ctx: Ctx, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        result = warehouse_client(ctx.settings.clickhouse_url).query(sql, parameters=parameters)
    except Exception as exc:  # noqa: BLE001 - any warehouse failure is "unavailable" to a caller
        raise ApiError(503, f"the event store is unavailable ({type(exc).__name__}); "
                       "try again shortly") from None
    return list(result.named_results())


# --- search -----------------------------------------------------------------------------------

_PERIOD = re.compile(r"^([1-9][0-9]{0,3})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SEARCH_KEYS = ("is", "release", "level", "assigned")
_IS_VALUES = {"resolved", "unresolved", "ignored", "assigned", "unassigned"}


def period_start(period: str) -> datetime | None:
    if period == "":
        return None
    match = _PERIOD.match(period)
    if match is None:  # the schema's pattern already refused it; kept for direct callers
        raise bad_request(f"statsPeriod must look like 24h or 14d, got {period!r}")
    delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if delta > timedelta(days=400):
        raise bad_request("statsPeriod may be at most 400 days")
    return datetime.now(UTC) - delta


# Sentry's short ids: the project's slug in capitals, then the issue's number in its project
# in Crockford's base 32 (digits and capitals without I, L, O, U): WEB-1, WEB-Z, WEB-10.
_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SHORT_ID = re.compile(rf"^({SlugConverter.regex})-([0-9A-Za-z]{{1,12}})$")


def short_id_text(project_slug: str, number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 32)
        digits = _BASE32[digit] + digits
        if not number:
            return f"{project_slug.upper()}-{digits}"


def parse_short_id(text: str) -> tuple[str, int] | None:
    """(project slug, lowercase; number) of a short id, or None if `text` is not one. Read
    as Crockford reads: any case, I and L as 1, O as 0."""
    match = _SHORT_ID.match(text)
    if match is None:
        return None
    number = 0
    for char in match[2].upper().replace("I", "1").replace("L", "1").replace("O", "0"):
        if char not in _BASE32:
            return None
        number = number * 32 + _BASE32.index(char)
    return match[1].lower(), number


def apply_search(ctx: Ctx, statement: Select[Any], project: Project, query: str
                 ) -> Select[Any]:
    """Sentry-like search: `is:resolved|unresolved|ignored|assigned|unassigned`,
    `assigned:me|<email>`, `level:<level>`, `release:<version>`; other words match the title
    or culprit (case-insensitive), and one that reads as the project's short id (`WEB-1A`)
    also finds that issue (`web-server` in project web reads as one, and still finds text)."""
    project_id = project.id
    words = []
    for token in query.split():
        key, sep, value = token.partition(":")
        if not sep or key not in SEARCH_KEYS:
            words.append(token)
            continue
        if not value:
            raise bad_request(f"search key {key!r} needs a value, e.g. {key}:something")
        if key == "is":
            if value not in _IS_VALUES:
                raise bad_request(f"unknown is:{value}; use one of {sorted(_IS_VALUES)}")
            if value in ("resolved", "unresolved", "ignored"):
                statement = statement.where(Issue.status == IssueStatus(value))
            elif value == "assigned":
                statement = statement.where(Issue.assignee_id.is_not(None))
            else:
                statement = statement.where(Issue.assignee_id.is_(None))
        elif key == "level":
            statement = statement.where(Issue.level == value)
        elif key == "assigned":
            user_id = ctx.user_id if value == "me" else _member_id_by_email(ctx, value)
            statement = statement.where(Issue.assignee_id == user_id)
        elif key == "release":
            rows = clickhouse(
                ctx,
                "SELECT DISTINCT issue_id FROM events FINAL WHERE organization_id = {org:UInt64}"
                " AND project_id = {project:UInt64} AND release = {release:String}",
                {"org": ctx.org_id, "project": project_id, "release": value},
            )
            statement = statement.where(Issue.id.in_([r["issue_id"] for r in rows]))
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches = [Issue.title.ilike(pattern, escape="\\"),
                   Issue.culprit.ilike(pattern, escape="\\")]
        short_id = parse_short_id(word)
        if short_id is not None and short_id[0] == project.slug.lower():
            matches.append(Issue.short_id == short_id[1])
        statement = statement.where(or_(*matches))
    return statement


def _member_id_by_email(ctx: Ctx, email: str) -> int:
    user_id = ctx.db.scalar(
        select(User.id).join(Membership, Membership.user_id == User.id)
        .where(User.email == email.lower())
    )
    return user_id if user_id is not None else -1  # matches nothing


def event_counts(ctx: Ctx, project_id: int, issue_ids: list[int],
                 start: datetime | None) -> dict[int, tuple[int, int]]:
    """(events, distinct users) per issue, within the period, in one grouped query."""
    if not issue_ids:
        return {}
    sql = (
        "SELECT issue_id, count() AS events, uniqExactIf(user_key, user_key != '') AS users"
        " FROM events FINAL WHERE organization_id = {org:UInt64} AND project_id = {project:UInt64}"
        " AND issue_id IN {ids:Array(UInt64)}"
    )
    parameters: dict[str, Any] = {"org": ctx.org_id, "project": project_id, "ids": issue_ids}
    if start is not None:
        sql += " AND timestamp >= {start:DateTime64(3, 'UTC')}"
        parameters["start"] = start
    rows = clickhouse(ctx, sql + " GROUP BY issue_id", parameters)
    return {int(r["issue_id"]): (int(r["events"]), int(r["users"])) for r in rows}


# --- issue answers ------------------------------------------------------------------------------


def issues_json(ctx: Ctx, issues: list[Issue], counts: dict[int, tuple[int, int]]
                ) -> list[dict[str, Any]]:
    release_ids = {i for issue in issues for i in (issue.first_release_id,
                                                    issue.resolved_in_release_id,
                                                    issue.regressed_in_release_id) if i}
    versions = dict(ctx.db.execute(select(Release.id, Release.version)
                                   .where(Release.id.in_(release_ids))).tuples().all()
                    ) if release_ids else {}
    user_ids = {issue.assignee_id for issue in issues if issue.assignee_id}
    users = {u.id: u for u in ctx.db.scalars(select(User).where(User.id.in_(user_ids)))}
    projects = {p.id: p for p in ctx.db.scalars(
        select(Project).where(Project.id.in_({issue.project_id for issue in issues})))}
    answer = []
    for issue in issues:
        project = projects[issue.project_id]
        events, users_affected = counts.get(issue.id, (0, 0))
        assignee = users.get(issue.assignee_id) if issue.assignee_id else None
        answer.append({
            "id": str(issue.id),
            "shortId": short_id_text(project.slug, issue.short_id),
            "title": issue.title, "culprit": issue.culprit, "level": issue.level,
            "status": issue.status.value,
            "substatus": issue.substatus.value if issue.substatus else None,
            "firstSeen": iso(issue.first_seen), "lastSeen": iso(issue.last_seen),
            "count": str(events), "userCount": users_affected, "timesSeen": issue.times_seen,
            "project": {"id": str(project.id), "slug": project.slug, "name": project.name},
            "assignedTo": user_json(assignee) if assignee else None,
            "statusDetails": {"inRelease": versions.get(issue.resolved_in_release_id),
                              "resolvedAt": iso(issue.resolved_at)},
            "firstRelease": versions.get(issue.first_release_id),
            "regressedInRelease": versions.get(issue.regressed_in_release_id),
        })
    return answer


def page_link(offset: int, limit: int, has_next: bool) -> str:
    """Sentry's Link header: tools follow rel="next" while results="true"."""
    def link(cursor: int, rel: str, results: bool) -> str:
        args = {**request.args.to_dict(), "cursor": str(cursor), "limit": str(limit)}
        return (f'<{request.base_url}?{urlencode(args)}>; rel="{rel}"; '
                f'results="{str(results).lower()}"; cursor="{cursor}"')
    return ", ".join([link(max(offset - limit, 0), "previous", offset > 0),
                      link(offset + limit, "next", has_next)])


CURSOR = QueryParam("cursor", {"type": "integer", "minimum": 0, "maximum": 1_000_000},
                    "Offset of the page (from the Link header)", 0)
LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100},
                   "Page size", 25)
ISSUE_QUERY = (
    QueryParam("query", {"type": "string", "maxLength": 500},
               "Search: is:resolved|unresolved|ignored|assigned|unassigned, assigned:me, "
               "level:<level>, release:<version>, free text on title and culprit; "
               "absent means is:unresolved", None),
    QueryParam("sort", {"type": "string", "enum": ["date", "new", "freq", "user"]},
               "date: last seen; new: first seen; freq: events; user: users affected", "date"),
    QueryParam("statsPeriod", {"type": "string", "pattern": "^([1-9][0-9]{0,3}[smhdw])?$"},
               "Only issues seen in this period (e.g. 24h, 14d), which also bounds the "
               "counts; empty for all time", "14d"),
    CURSOR,
    LIMIT,
)


@operation("GET", f"{PROJECT}/issues/", summary="The project's issue stream", tag="issues",
           access=Access.MEMBER, query=ISSUE_QUERY, response=s.array(s.ISSUE),
           errors=CLICKHOUSE_ERRORS)
def list_issues(ctx: Ctx, org: str, project: str) -> list[dict[str, Any]]:
    row = project_of(ctx, project)
    args = ctx.args
    query = "is:unresolved" if args["query"] is None else args["query"]
    start = period_start(args["statsPeriod"])
    statement = select(Issue).where(Issue.project_id == row.id)
    if start is not None:
        statement = statement.where(Issue.last_seen >= start)
    statement = apply_search(ctx, statement, row, query)
    offset, limit = args["cursor"], args["limit"]
    if args["sort"] in ("date", "new"):
        column = Issue.last_seen if args["sort"] == "date" else Issue.first_seen
        found = list(ctx.db.scalars(statement.order_by(column.desc(), Issue.id.desc())
                                    .offset(offset).limit(limit + 1)))
        page = found[:limit]
        counts = event_counts(ctx, row.id, [i.id for i in page], start)
    else:
        candidates = list(ctx.db.scalars(statement.order_by(Issue.last_seen.desc())
                                         .limit(MAX_CANDIDATES)))
        counts = event_counts(ctx, row.id, [i.id for i in candidates], start)
        rank = 0 if args["sort"] == "freq" else 1
        candidates.sort(key=lambda i: (counts.get(i.id, (0, 0))[rank], i.last_seen, i.id),
                        reverse=True)
        found = candidates[offset:offset + limit + 1]
        page = found[:limit]
    ctx.headers["Link"] = page_link(offset, limit, len(found) > limit)
    return issues_json(ctx, page, counts)


def issue_of(ctx: Ctx, issue_id: int) -> Issue:
    issue = ctx.db.get(Issue, issue_id)  # the tenant session: another org's issue is None
    if issue is None:
        raise not_found("issue")
    return issue


@operation("GET", f"/issues/<{ID}:issue_id>/", summary="One issue, with all-time counts",
           tag="issues", access=Access.MEMBER, response=s.ISSUE, errors=CLICKHOUSE_ERRORS)
def get_issue(ctx: Ctx, issue_id: int) -> dict[str, Any]:
    issue = issue_of(ctx, issue_id)
    return issues_json(ctx, [issue], event_counts(ctx, issue.project_id, [issue.id], None))[0]


@operation("GET", "/organizations/<slug:org>/shortids/<short_id>/",
           summary="Find an issue by its short id (WEB-1A)", tag="issues",
           access=Access.MEMBER, response=s.SHORT_ID_LOOKUP, errors=CLICKHOUSE_ERRORS)
def resolve_short_id(ctx: Ctx, org: str, short_id: str) -> dict[str, Any]:
    parsed = parse_short_id(short_id)
    if parsed is None:
        raise not_found("issue")
    slug, number = parsed
    # The tenant session: another organization's project or issue is not found.
    issue = ctx.db.scalar(select(Issue).join(Project, Project.id == Issue.project_id)
                          .where(func.lower(Project.slug) == slug, Issue.short_id == number))
    if issue is None:
        raise not_found("issue")
    [answer] = issues_json(ctx, [issue], event_counts(ctx, issue.project_id, [issue.id], None))
    return {"organizationSlug": org, "projectSlug": answer["project"]["slug"],
            "groupId": answer["id"], "shortId": answer["shortId"], "group": answer}


ISSUE_BODY = s.obj({
    "status": s.STATUS,
    "statusDetails": s.obj({"inRelease": {"type": "string", "minLength": 1, "maxLength": 250}}),
    "assignedTo": s.nullable({"type": "string", "maxLength": 254}),
})


def _status_state(ctx: Ctx, issue: Issue) -> dict[str, Any]:
    release_id = issue.resolved_in_release_id
    version = (ctx.db.scalar(select(Release.version).where(Release.id == release_id))
               if release_id else None)
    return {"status": issue.status.value, "inRelease": version}


@operation("PUT", f"/issues/<{ID}:issue_id>/", summary="Triage an issue: status (resolved, "
           "optionally in a release; unresolved; ignored) and assignee (email, 'user:<id>', or "
           "null)", tag="issues", access=Access.MEMBER, body=ISSUE_BODY, response=s.ISSUE,
           errors=CLICKHOUSE_ERRORS)
def update_issue(ctx: Ctx, issue_id: int) -> dict[str, Any]:
    issue = issue_of(ctx, issue_id)
    body = ctx.body
    if "statusDetails" in body and body.get("status") != "resolved":
        raise bad_request("statusDetails goes with status 'resolved'")
    if "status" in body:
        before = _status_state(ctx, issue)
        status = IssueStatus(body["status"])
        release_id = None
        in_release = (body.get("statusDetails") or {}).get("inRelease")
        if in_release is not None:
            release_id = ctx.db.scalar(select(Release.id).where(Release.version == in_release))
            if release_id is None:
                raise bad_request(f"unknown release {in_release!r} in this organization")
        issue.status = status
        if status is IssueStatus.resolved:
            issue.resolved_at = datetime.now(UTC)
            issue.resolved_in_release_id = release_id
            issue.substatus = None
        else:
            issue.resolved_at = None
            issue.resolved_in_release_id = None
            issue.substatus = (IssueSubstatus.archived_forever if status is IssueStatus.ignored
                               else IssueSubstatus.ongoing)
        after = _status_state(ctx, issue)
        if after != before:
            action = {"resolved": "issue.resolve", "unresolved": "issue.unresolve",
                      "ignored": "issue.ignore"}[status.value]
            ctx.audit(action, "issue", issue.id, before=before, after=after)
    if "assignedTo" in body:
        before_id = issue.assignee_id
        issue.assignee_id = _assignee(ctx, body["assignedTo"])
        if issue.assignee_id != before_id:
            ctx.audit("issue.assign" if issue.assignee_id else "issue.unassign", "issue",
                      issue.id, before={"assignee": _email(ctx, before_id)},
                      after={"assignee": _email(ctx, issue.assignee_id)})
    ctx.db.flush()
    return issues_json(ctx, [issue], event_counts(ctx, issue.project_id, [issue.id], None))[0]


def _assignee(ctx: Ctx, who: str | None) -> int | None:
    if who is None or who == "":
        return None
    statement = select(User.id).join(Membership, Membership.user_id == User.id)
    if who.startswith("user:"):
        if not who[5:].isdigit() or len(who) > 24:
            raise bad_request("assignedTo must be an email, 'user:<id>' or null")
        statement = statement.where(User.id == int(who[5:]))
    else:
        statement = statement.where(User.email == who.strip().lower())
    user_id = ctx.db.scalar(statement)  # tenant session: only members of this organization
    if user_id is None:
        raise bad_request(f"{who!r} is not a member of this organization")
    return user_id


def _email(ctx: Ctx, user_id: int | None) -> str | None:
    return ctx.db.scalar(select(User.email).where(User.id == user_id)) if user_id else None


# --- comments -----------------------------------------------------------------------------------


def comment_json(comment: IssueComment, author: User | None) -> dict[str, Any]:
    return {"id": str(comment.id), "text": comment.text, "dateCreated": iso(comment.created_at),
            "user": user_json(author) if author else None}


@operation("GET", f"/issues/<{ID}:issue_id>/comments/", summary="Comments on an issue",
           tag="issues", access=Access.MEMBER, response=s.array(s.COMMENT))
def list_comments(ctx: Ctx, issue_id: int) -> list[dict[str, Any]]:
    issue = issue_of(ctx, issue_id)
    rows = ctx.db.execute(
        select(IssueComment, User).outerjoin(User, User.id == IssueComment.author_id)
        .where(IssueComment.issue_id == issue.id).order_by(IssueComment.id)
    )
    return [comment_json(comment, author) for comment, author in rows]


@operation("POST", f"/issues/<{ID}:issue_id>/comments/", summary="Comment on an issue",
           tag="issues", access=Access.MEMBER,
           body=s.obj({"text": {"type": "string", "minLength": 1, "maxLength": 10_000,
                                "pattern": r"\S"}}, ["text"]),
           response=s.COMMENT, status=201)
def add_comment(ctx: Ctx, issue_id: int) -> dict[str, Any]:
    issue = issue_of(ctx, issue_id)
    comment = IssueComment(issue_id=issue.id, author_id=ctx.user_id, text=ctx.body["text"])
    ctx.db.add(comment)
    ctx.db.flush()
    ctx.db.refresh(comment)
    return comment_json(comment, ctx.db.get(User, ctx.user_id))


# --- events -------------------------------------------------------------------------------------

_SUMMARY = (
    "replaceAll(toString(event_id), '-', '') AS id, issue_id, project_id, title, culprit,"
    " message, level, platform, timestamp, received_at, release, environment, user_id,"
    " user_email, user_ip, tags.key AS tag_keys, tags.value AS tag_values"
)
EVENT_DETAIL = (
    _SUMMARY + ", dist, transaction_name, sdk_name, sdk_version, stacktrace, breadcrumbs,"
    " contexts, payload, fingerprint"
)


def _or_none(value: str) -> str | None:
    return value or None


def _json(text: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default


def event_summary_json(row: dict[str, Any]) -> dict[str, Any]:
    user = {"id": _or_none(row["user_id"]), "email": _or_none(row["user_email"]),
            "ip_address": _or_none(row["user_ip"])}
    return {
        "id": row["id"], "eventID": row["id"], "groupID": str(row["issue_id"]),
        "projectID": str(row["project_id"]), "title": row["title"], "culprit": row["culprit"],
        "message": row["message"], "level": row["level"], "platform": row["platform"],
        "dateCreated": iso(row["timestamp"]), "dateReceived": iso(row["received_at"]),
        "release": _or_none(row["release"]), "environment": _or_none(row["environment"]),
        "user": user if any(user.values()) else None,
        "tags": [{"key": k, "value": v} for k, v in zip(row["tag_keys"], row["tag_values"],
                                                         strict=False)],
    }


# What processing changed in an event, as its `errors` list it (pipelines.processed).
_PROCESSING_ERRORS = {
    CLOCK_DRIFT: "The device's clock was off by 55 minutes or more when it sent the event (it"
                 " said when it sent it), so the event's time was moved by as much.",
    FUTURE_TIMESTAMP: "The event's time was more than a minute after it was received, so the"
                      " time it was received is used (the device's clock was ahead).",
    PAST_TIMESTAMP: "The event's time was more than 30 days before it was received, so the"
                    " time it was received is used (the device's clock was behind).",
}


def _processing_errors(errors: Any) -> list[dict[str, Any]]:
    """The event's `errors` as Sentry's API gives them: a type, a sentence, the details."""
    listed = []
    for error in errors if isinstance(errors, list) else ():
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            kind = error["type"]
            listed.append({"type": kind, "message": _PROCESSING_ERRORS.get(kind, kind),
                           "data": {k: v for k, v in error.items() if k != "type"}})
    return listed


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    payload = _json(row["payload"], {})
    payload = payload if isinstance(payload, dict) else {}
    request_info, extra = payload.get("request"), payload.get("extra")
    exception = _json(row["stacktrace"], [])
    breadcrumbs = _json(row["breadcrumbs"], [])
    contexts = _json(row["contexts"], {})
    return {
        **event_summary_json(row),
        "dist": _or_none(row["dist"]),
        "transaction": _or_none(row["transaction_name"]),
        "sdk": {"name": row["sdk_name"], "version": row["sdk_version"]},
        "exception": {"values": [v for v in exception if isinstance(v, dict)]
                      if isinstance(exception, list) else []},
        "breadcrumbs": {"values": [b for b in breadcrumbs if isinstance(b, dict)]
                        if isinstance(breadcrumbs, list) else []},
        "contexts": contexts if isinstance(contexts, dict) else {},
        "request": request_info if isinstance(request_info, dict) else None,
        "extra": extra if isinstance(extra, dict) else None,
        "fingerprint": list(row["fingerprint"]),
        "errors": _processing_errors(payload.get("errors")),
    }


def _issue_events_sql(columns: str) -> str:
    return (
        f"SELECT {columns} FROM events FINAL WHERE organization_id = {{org:UInt64}}"
        " AND project_id = {project:UInt64} AND issue_id = {issue:UInt64}"
        " ORDER BY timestamp DESC, event_id DESC LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
    )


@operation("GET", f"/issues/<{ID}:issue_id>/events/", summary="An issue's events, newest first",
           tag="events", access=Access.MEMBER, query=(CURSOR, LIMIT),
           response=s.array(s.EVENT_SUMMARY), errors=CLICKHOUSE_ERRORS)
def list_issue_events(ctx: Ctx, issue_id: int) -> list[dict[str, Any]]:
    issue = issue_of(ctx, issue_id)
    offset, limit = ctx.args["cursor"], ctx.args["limit"]
    rows = clickhouse(ctx, _issue_events_sql(_SUMMARY), {
        "org": ctx.org_id, "project": issue.project_id, "issue": issue.id,
        "limit": limit + 1, "offset": offset})
    ctx.headers["Link"] = page_link(offset, limit, len(rows) > limit)
    return [event_summary_json(r) for r in rows[:limit]]


@operation("GET", f"/issues/<{ID}:issue_id>/events/latest/", summary="An issue's latest event, "
           "in full", tag="events", access=Access.MEMBER, response=s.EVENT,
           errors=CLICKHOUSE_ERRORS)
def latest_issue_event(ctx: Ctx, issue_id: int) -> dict[str, Any]:
    issue = issue_of(ctx, issue_id)
    rows = clickhouse(ctx, _issue_events_sql(EVENT_DETAIL), {
        "org": ctx.org_id, "project": issue.project_id, "issue": issue.id, "limit": 1,
        "offset": 0})
    if not rows:
        raise not_found("event")
    return event_json(rows[0])


@operation("GET", f"/issues/<{ID}:issue_id>/tags/", summary="An issue's tags with their most "
           "frequent values", tag="events", access=Access.MEMBER, response=s.array(s.TAG),
           errors=CLICKHOUSE_ERRORS)
def issue_tags(ctx: Ctx, issue_id: int) -> list[dict[str, Any]]:
    issue = issue_of(ctx, issue_id)
    parameters = {"org": ctx.org_id, "project": issue.project_id, "issue": issue.id}
    scope = ("FROM events FINAL ARRAY JOIN tags.key AS key, tags.value AS value"
             " WHERE organization_id = {org:UInt64} AND project_id = {project:UInt64}"
             " AND issue_id = {issue:UInt64}")
    totals = clickhouse(ctx, f"SELECT key, count() AS total, uniqExact(value) AS unique_values"
                             f" {scope} GROUP BY key ORDER BY total DESC, key", parameters)
    top = clickhouse(ctx, f"SELECT key, value, count() AS n, min(timestamp) AS first,"
                          f" max(timestamp) AS last {scope} GROUP BY key, value"
                          f" ORDER BY key, n DESC, value LIMIT 10 BY key", parameters)
    values: dict[str, list[dict[str, Any]]] = {}
    for r in top:
        values.setdefault(r["key"], []).append({
            "key": r["key"], "value": r["value"], "name": r["value"], "count": int(r["n"]),
            "firstSeen": iso(r["first"]), "lastSeen": iso(r["last"])})
    return [{"key": t["key"], "name": t["key"], "totalValues": int(t["total"]),
             "uniqueValues": int(t["unique_values"]), "topValues": values.get(t["key"], [])}
            for t in totals]


@operation("GET", f"{PROJECT}/events/<eventid:event_id>/", summary="One event of the project, "
           "in full", tag="events", access=Access.MEMBER, response=s.EVENT,
           errors=CLICKHOUSE_ERRORS)
def get_event(ctx: Ctx, org: str, project: str, event_id: str) -> dict[str, Any]:
    row = project_of(ctx, project)
    rows = clickhouse(ctx, f"SELECT {EVENT_DETAIL} FROM events FINAL WHERE"
                           " organization_id = {org:UInt64} AND project_id = {project:UInt64}"
                           " AND event_id = toUUID({event:String}) LIMIT 1",
                      {"org": ctx.org_id, "project": row.id, "event": event_id})
    if not rows:
        raise not_found("event")
    return event_json(rows[0])

