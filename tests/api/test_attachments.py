"""An event's attachments through the API, as Sentry's: listed with their metadata, served as a
download (never inline, whatever type the SDK claimed), and invisible to other organizations."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import unquote

from sqlalchemy import Engine

from core.blobs import blob_store
from core.models import Role
from core.settings import Settings
from ingest.attachments import AttachmentFile, store_attachments
from tests.api.conftest import Api, Tenant, make_api_token

PAGE = b"<html><script>alert(document.cookie)</script></html>"
LOG = b"09:41 payment retried\n"


def attachments_path(tenant: Tenant, event_id: str) -> str:
    return f"/api/0/projects/{tenant.org}/{tenant.project}/events/{event_id}/attachments/"


def test_an_events_files_are_listed_and_downloaded(api: Api, engine: Engine,
                                                   api_settings: Settings, tenant_a: Tenant,
                                                   tenant_b: Tenant) -> None:
    event_id = uuid.uuid4().hex
    store_attachments(engine, blob_store(api_settings), tenant_a.org_id, tenant_a.project_id,
                      event_id, [AttachmentFile("crash log.txt", "text/plain",
                                                "event.attachment", LOG),
                                 AttachmentFile("näme.html", "text/html", "event.attachment",
                                                PAGE)])
    token = make_api_token(engine, tenant_a.org_id, tenant_a.developer_id, Role.developer)
    listed = api.call("GET", attachments_path(tenant_a, event_id), token)
    assert listed.status_code == 200, listed.text
    by_name = {a["name"]: a for a in listed.json()}
    assert set(by_name) == {"crash log.txt", "näme.html"}
    log = by_name["crash log.txt"]
    assert (log["mimetype"], log["size"], log["sha1"], log["type"], log["event_id"]) == (
        "text/plain", len(LOG), hashlib.sha1(LOG).hexdigest(), "event.attachment", event_id)

    one = f"{attachments_path(tenant_a, event_id)}{log['id']}/"
    assert api.call("GET", one, token).json() == log
    download = api.call("GET", f"{one}?download=1", token)
    assert download.status_code == 200 and download.content == LOG
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment;")

    page = api.call("GET", f"{attachments_path(tenant_a, event_id)}"
                           f"{by_name['näme.html']['id']}/?download", token)
    assert page.content == PAGE  # served, but as a download: never run as the site's page
    assert page.headers["Content-Type"] == "application/octet-stream"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "näme.html" in unquote(page.headers["Content-Disposition"])

    # Another organization sees none of it, whatever path it tries.
    theirs = make_api_token(engine, tenant_b.org_id, tenant_b.developer_id, Role.developer)
    assert api.call("GET", attachments_path(tenant_a, event_id), theirs).status_code == 404
    foreign = attachments_path(tenant_b, event_id)
    assert api.call("GET", foreign, theirs).json() == []
    assert api.call("GET", f"{foreign}{log['id']}/?download=1", theirs).status_code == 404
    missing = api.call("GET", f"{attachments_path(tenant_a, event_id)}{uuid.uuid4()}/", token)
    assert missing.status_code == 404 and missing.json() == {"detail": "attachment not found"}
