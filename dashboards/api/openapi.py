"""`/api/0/openapi.json`: the OpenAPI 3.1 document, built from the route declarations.

Each `@operation` both registers its Flask route and describes itself, so the document lists
exactly the routes that exist (a test compares it with Flask's URL map).
"""

from __future__ import annotations

import re
from typing import Any

from dashboards.api import schemas as s
from dashboards.api.routing import OPERATIONS, PATH_SCHEMAS, Access, Ctx, Operation, operation

_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")

_ERRORS = {
    400: "The request is malformed; `detail` says what is wrong",
    401: "Not authenticated, or the token is expired, revoked or invalid",
    403: "Authenticated, but your role may not do this (or the CSRF check failed)",
    404: "No such object in an organization you belong to",
    409: "Conflicts with an existing object",
    429: "Too many failed sign-ins; see Retry-After",
    503: "The event store is unavailable",
}


def openapi_path(rule: str) -> str:
    """A Flask rule under /api/0 as an OpenAPI path."""
    return "/api/0" + _PARAM.sub(lambda m: "{" + m[2] + "}", rule)


def path_parameters(rule: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True,
         "schema": PATH_SCHEMAS.get(converter, s.STRING)}
        for converter, name in _PARAM.findall(rule)
    ]


def describe(op: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK" if op.status != 201 else "Created"}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": op.response}}
    elif op.status != 204:
        success["description"] = "OK"
    if op.binary:
        success.setdefault("content", {})["application/octet-stream"] = {"schema": s.BINARY}
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.errors:
        responses[str(status)] = {
            "description": _ERRORS.get(status, "Error"),
            "content": {"application/json": {"schema": s.ERROR}},
        }
    document: dict[str, Any] = {
        "operationId": op.endpoint.removeprefix("api."),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": path_parameters(op.rule) + [
            {"name": q.name, "in": "query", "required": False, "description": q.description,
             "schema": q.schema}
            for q in op.query
        ],
        "responses": responses,
        "security": [] if op.access is Access.PUBLIC else [{"bearer": []}, {"cookie": []}],
    }
    if op.access in (Access.MEMBER, Access.ADMIN):
        document["x-pulsetrace-role"] = op.access.value
    if op.body is not None:
        document["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": op.body}},
        }
    return document


def build_document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = describe(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PulseTrace management API",
            "version": "0",
            "description": "Organizations, members, projects, DSN keys, issues and events. "
            "Authenticate with `Authorization: Bearer <token>`: an access token from "
            "/api/0/auth/login (refresh it at /api/0/auth/refresh) or a `ptk_` API token. "
            "Browsers use the cookies login sets, and send `X-CSRF-Token` on writes.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "A JWT access token or a ptk_ API token"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "pt_access"},
            },
        },
    }


@operation("GET", "/openapi.json", summary="This API's OpenAPI document", tag="meta",
           access=Access.PUBLIC, response=s.OPENAPI_DOCUMENT)
def openapi_document(ctx: Ctx) -> dict[str, Any]:
    return build_document(OPERATIONS)
