"""Attachments: files an SDK sends in an envelope beside an event (`scope.add_attachment`: log
files, screenshots, view hierarchies). Each file's bytes go to the blob store and a row to
PostgreSQL `event_attachments` before ingest answers; the event itself lands as any event.

A file's id is a UUID derived from its project, its event, its place among the envelope's
attachments and its name: an envelope sent again (its answer was lost) stores each file once,
under the same blob key, in the same row.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from core.blobs import BlobStore
from core.db import tenant_session
from core.models import EventAttachment
from ingest.envelope import EnvelopeItem

# Any fixed UUID: it keeps these ids apart from other name-based UUIDs.
_ATTACHMENT_IDS = uuid.UUID("5b0e6f0e-59a4-4d5e-9a53-7a5d3c1d8f21")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_ATTACHMENT_TYPE = "event.attachment"  # Sentry's: a plain file, not a minidump


class InvalidAttachment(ValueError):
    pass


@dataclass(frozen=True)
class AttachmentFile:
    name: str
    content_type: str
    attachment_type: str
    data: bytes


def _header(item: EnvelopeItem, name: str, default: str, limit: int) -> str:
    value = item.headers.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise InvalidAttachment(f"its `{name}` must be a string")
    if len(value) > limit or "\x00" in value:
        raise InvalidAttachment(f"its `{name}` must be at most {limit} characters, without NUL")
    return value


def attachment_file(item: EnvelopeItem) -> AttachmentFile:
    """The file an `attachment` item carries, its headers checked (SDKs always send a
    filename; the others have Sentry's defaults)."""
    filename = item.headers.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidAttachment("it has no `filename`")
    return AttachmentFile(
        name=_header(item, "filename", "", 255),
        content_type=_header(item, "content_type", DEFAULT_CONTENT_TYPE, 255),
        attachment_type=_header(item, "attachment_type", DEFAULT_ATTACHMENT_TYPE, 64),
        data=item.payload,
    )


def attachment_id(project_id: int, event_id: str, index: int, name: str) -> uuid.UUID:
    return uuid.uuid5(_ATTACHMENT_IDS, f"{project_id}:{event_id}:{index}:{name}")


def blob_key(organization_id: int, project_id: int, event_id: str, file_id: uuid.UUID) -> str:
    return f"attachments/{organization_id}/{project_id}/{event_id}/{file_id.hex}"


def store_attachments(engine: Engine, blobs: BlobStore, organization_id: int, project_id: int,
                      event_id: str, files: list[AttachmentFile]) -> None:
    """Bytes first, then the rows: a row never names a blob that is not there. Whatever the
    blob store or PostgreSQL raise propagates (the caller answers 503; sent again, nothing
    is stored twice)."""
    rows: list[dict[str, Any]] = []
    for index, file in enumerate(files):
        file_id = attachment_id(project_id, event_id, index, file.name)
        key = blob_key(organization_id, project_id, event_id, file_id)
        blobs.put(key, file.data)  # the SDK's content type goes in the row, not in S3 headers
        rows.append({"id": file_id, "organization_id": organization_id, "project_id": project_id,
                     "event_id": event_id, "name": file.name, "content_type": file.content_type,
                     "attachment_type": file.attachment_type, "size": len(file.data),
                     "sha1": hashlib.sha1(file.data).hexdigest(), "blob_key": key})
    with tenant_session(engine, organization_id) as session, session.begin():
        # Two sends of one envelope at once: the second's insert fails on the key, it is
        # answered 503, and its next send finds the rows.
        stored = set(session.scalars(select(EventAttachment.id).where(
            EventAttachment.id.in_([row["id"] for row in rows]))))
        session.add_all(EventAttachment(**row) for row in rows if row["id"] not in stored)
