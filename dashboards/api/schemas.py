"""JSON schemas of the management API's bodies and answers.

Request schemas are enforced (routing validates every body against them); answer schemas are
published in the OpenAPI document and checked by the schemathesis run in the test suite.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def obj(properties: JSON, required: list[str] | None = None, *, closed: bool = True) -> JSON:
    schema: JSON = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def answer(properties: JSON) -> JSON:
    """An answer object: every listed field is always present."""
    return obj(properties, list(properties), closed=False)


def array(items: JSON) -> JSON:
    return {"type": "array", "items": items}


def nullable(schema: JSON) -> JSON:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


STRING: JSON = {"type": "string"}
INTEGER: JSON = {"type": "integer"}
BOOLEAN: JSON = {"type": "boolean"}
DATETIME: JSON = {"type": "string", "format": "date-time"}
ID_STRING: JSON = {"type": "string", "pattern": "^[0-9]+$"}  # Sentry sends ids as strings
ROLE: JSON = {"type": "string", "enum": ["admin", "developer"]}
STATUS: JSON = {"type": "string", "enum": ["resolved", "unresolved", "ignored"]}
EMAIL: JSON = {"type": "string", "maxLength": 254,
               "pattern": r"^[^@\s\x00]+@[^@\s\x00]+$"}
NAME: JSON = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}
SLUG: JSON = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,49}$"}
PASSWORD: JSON = {"type": "string", "minLength": 8, "maxLength": 1024}
ANY_OBJECT: JSON = {"type": "object"}

ERROR = answer({"detail": STRING})

USER = answer({"id": ID_STRING, "email": STRING, "name": STRING})

ORGANIZATION = answer({
    "id": ID_STRING, "slug": STRING, "name": STRING, "dateCreated": DATETIME,
    "role": ROLE,
})

ME = answer({
    "id": ID_STRING, "email": STRING, "name": STRING,
    "organizations": array(answer({"slug": STRING, "name": STRING, "role": ROLE})),
    "authenticatedBy": {"type": "string", "enum": ["jwt", "cookie", "session", "api_token"]},
})

TOKEN_PAIR = answer({
    "accessToken": STRING, "refreshToken": STRING, "tokenType": {"const": "Bearer"},
    "expiresIn": INTEGER, "csrfToken": STRING, "user": USER,
})

MEMBER = answer({
    "id": ID_STRING, "email": STRING, "name": STRING, "role": ROLE, "dateCreated": DATETIME,
    "user": USER,
})
NEW_MEMBER = {**MEMBER, "properties": {
    **MEMBER["properties"],
    "temporaryPassword": nullable(STRING),
}, "required": [*MEMBER["required"], "temporaryPassword"]}

SCRUBBING = answer({
    "ipMode": {"type": "string", "enum": ["keep", "hash", "drop"]},
    "extraPatterns": array(STRING),
    "safeFields": array(STRING),
})

PROJECT = answer({
    "id": ID_STRING, "slug": STRING, "name": STRING, "platform": STRING,
    "dateCreated": DATETIME, "allowedOrigins": array(STRING), "scrubbing": SCRUBBING,
    "organization": answer({"id": ID_STRING, "slug": STRING}),
})

KEY = answer({
    "id": ID_STRING, "label": STRING, "public": STRING, "isActive": BOOLEAN,
    "rateLimitPerMinute": nullable(INTEGER), "dateCreated": DATETIME,
    "dateRevoked": nullable(DATETIME), "projectId": ID_STRING,
    "dsn": answer({"public": STRING}),
})

ISSUE = answer({
    "id": ID_STRING, "shortId": STRING, "title": STRING, "culprit": nullable(STRING),
    "level": STRING, "status": STATUS, "substatus": nullable(STRING),
    "firstSeen": DATETIME, "lastSeen": DATETIME, "count": ID_STRING, "userCount": INTEGER,
    "timesSeen": INTEGER,
    "project": answer({"id": ID_STRING, "slug": STRING, "name": STRING}),
    "assignedTo": nullable(USER),
    "statusDetails": answer({"inRelease": nullable(STRING),
                             "resolvedAt": nullable(DATETIME)}),
    "firstRelease": nullable(STRING),
    "regressedInRelease": nullable(STRING),
})

SHORT_ID_LOOKUP = answer({
    "organizationSlug": STRING, "projectSlug": STRING, "groupId": ID_STRING,
    "shortId": STRING, "group": ISSUE,
})

TAG_PAIR = answer({"key": STRING, "value": STRING})

EVENT_SUMMARY = answer({
    "id": STRING, "eventID": STRING, "groupID": ID_STRING, "projectID": ID_STRING,
    "title": STRING, "culprit": STRING, "message": STRING, "level": STRING,
    "platform": STRING, "dateCreated": DATETIME, "dateReceived": DATETIME,
    "release": nullable(STRING), "environment": nullable(STRING),
    "user": nullable(answer({"id": nullable(STRING), "email": nullable(STRING),
                             "ip_address": nullable(STRING)})),
    "tags": array(TAG_PAIR),
})

EVENT = {**EVENT_SUMMARY, "properties": {
    **EVENT_SUMMARY["properties"],
    "dist": nullable(STRING),
    "transaction": nullable(STRING),
    "sdk": answer({"name": STRING, "version": STRING}),
    "exception": answer({"values": array(ANY_OBJECT)}),
    "breadcrumbs": answer({"values": array(ANY_OBJECT)}),
    "contexts": ANY_OBJECT,
    "request": nullable(ANY_OBJECT),
    "extra": nullable(ANY_OBJECT),
    "fingerprint": array(STRING),
    "errors": array(answer({"type": STRING, "message": STRING, "data": ANY_OBJECT})),
}, "required": [*EVENT_SUMMARY["required"], "dist", "transaction", "sdk", "exception",
                "breadcrumbs", "contexts", "request", "extra", "fingerprint", "errors"]}

UUID_STRING: JSON = {"type": "string", "format": "uuid"}
ATTACHMENT = answer({
    "id": UUID_STRING, "event_id": STRING, "type": STRING, "name": STRING, "mimetype": STRING,
    "size": INTEGER, "sha1": STRING, "dateCreated": DATETIME,
    "headers": answer({"Content-Type": STRING}),
})
BINARY: JSON = {"type": "string", "format": "binary"}

TAG = answer({
    "key": STRING, "name": STRING, "totalValues": INTEGER, "uniqueValues": INTEGER,
    "topValues": array(answer({"key": STRING, "value": STRING, "name": STRING,
                               "count": INTEGER, "firstSeen": DATETIME,
                               "lastSeen": DATETIME})),
})

COMMENT = answer({"id": ID_STRING, "text": STRING, "dateCreated": DATETIME,
                  "user": nullable(USER)})

API_TOKEN = answer({
    "id": ID_STRING, "name": STRING, "role": ROLE, "dateCreated": DATETIME,
    "lastUsed": nullable(DATETIME), "expiresAt": nullable(DATETIME), "user": USER,
})
NEW_API_TOKEN = {**API_TOKEN, "properties": {**API_TOKEN["properties"], "token": STRING},
                 "required": [*API_TOKEN["required"], "token"]}

AUDIT_ENTRY = answer({
    "id": ID_STRING, "event": STRING, "actor": nullable(USER), "ipAddress": nullable(STRING),
    "targetType": nullable(STRING), "targetObject": nullable(STRING),
    "dateCreated": DATETIME, "data": ANY_OBJECT,
})
AUDIT_LOG = answer({"rows": array(AUDIT_ENTRY), "options": array(STRING)})

OPENAPI_DOCUMENT = {"type": "object", "required": ["openapi", "paths"]}
