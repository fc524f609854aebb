"""An event's attachments: the files its SDK sent with it (stored by ingest.attachments), as
Sentry's API lists and serves them."""

from __future__ import annotations

import io
import uuid
from typing import Any

from flask import Response, send_file
from sqlalchemy import select

from core.blobs import BlobNotFound
from core.models import EventAttachment
from dashboards.api import schemas as s
from dashboards.api.errors import not_found
from dashboards.api.projects import PROJECT, project_of
from dashboards.api.routing import Access, Ctx, QueryParam, iso, operation, state

ATTACHMENTS = f"{PROJECT}/events/<eventid:event_id>/attachments/"
DOWNLOAD = QueryParam("download", {"type": "string"},
                      "present (any value, e.g. 1): answer the file's bytes instead")


def attachment_json(attachment: EventAttachment) -> dict[str, Any]:
    return {
        "id": str(attachment.id), "event_id": attachment.event_id,
        "type": attachment.attachment_type, "name": attachment.name,
        "mimetype": attachment.content_type, "size": attachment.size, "sha1": attachment.sha1,
        "dateCreated": iso(attachment.created_at),
        "headers": {"Content-Type": attachment.content_type},
    }


@operation("GET", ATTACHMENTS, summary="The files an event's SDK sent with it",
           tag="events", access=Access.MEMBER, response=s.array(s.ATTACHMENT))
def list_event_attachments(ctx: Ctx, org: str, project: str,
                           event_id: str) -> list[dict[str, Any]]:
    found = ctx.db.scalars(select(EventAttachment).where(
        EventAttachment.project_id == project_of(ctx, project).id,
        EventAttachment.event_id == event_id,
    ).order_by(EventAttachment.created_at, EventAttachment.name, EventAttachment.id))
    return [attachment_json(a) for a in found]


@operation("GET", f"{ATTACHMENTS}<uuid:attachment_id>/", summary="One file an event's SDK sent "
           "with it; with ?download, its bytes", tag="events", access=Access.MEMBER,
           response=s.ATTACHMENT, query=(DOWNLOAD,), binary=True)
def get_event_attachment(ctx: Ctx, org: str, project: str, event_id: str,
                         attachment_id: uuid.UUID) -> dict[str, Any] | Response:
    attachment = ctx.db.scalar(select(EventAttachment).where(
        EventAttachment.project_id == project_of(ctx, project).id,
        EventAttachment.event_id == event_id, EventAttachment.id == attachment_id))
    if attachment is None:
        raise not_found("attachment")
    if ctx.args.get("download") is None:
        return attachment_json(attachment)
    try:
        data = state().blobs.get(attachment.blob_key)
    except BlobNotFound:
        raise not_found("attachment") from None
    # Always a download, never shown inline, whatever type the SDK claimed: an HTML or SVG
    # "screenshot" must not run as a page of the dashboard's origin.
    answer = send_file(io.BytesIO(data), mimetype="application/octet-stream",
                       as_attachment=True, download_name=attachment.name)
    answer.headers["X-Content-Type-Options"] = "nosniff"
    return answer
