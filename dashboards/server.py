"""The dashboard's Flask server: the management REST API under /api/0/ and browser sign-in.

`pulsetrace up` serves it with granian (`dashboards.wsgi:app`) on DASHBOARD_PORT (8050); the
Dash app will mount on this same server.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from core import db
from core.blobs import blob_store
from core.redis import redis_client
from core.settings import Settings, get_settings
from dashboards import login
from dashboards.api import (
    attachments,
    audit,
    auth,
    issues,
    openapi,
    organizations,
    projects,
    routing,
)
from dashboards.api.routing import ApiState, error_response
from dashboards.api.throttle import LoginThrottle
from ingest.state import trusted_networks

# Imported for their routes: each module declares its operations on the API blueprint.
API_MODULES = (auth, organizations, projects, issues, attachments, audit, openapi)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.update(
        # Derived, so the session signature is not the JWT key nor SECRET_KEY itself.
        SECRET_KEY=hmac.new(settings.secret_key.encode(), b"pulsetrace flask session",
                            hashlib.sha256).hexdigest(),
        SESSION_COOKIE_NAME="pt_session",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=True,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,  # management requests are small
    )
    client = redis_client(settings.redis_url)
    app.extensions["pulsetrace_api"] = ApiState(
        settings=settings,
        engine=db.make_engine(settings.database_url, pool_size=4, max_overflow=4),
        redis=client,
        throttle=LoginThrottle(client, settings),
        blobs=blob_store(settings),
        trusted_proxies=trusted_networks(settings.ingest_trusted_proxies),
    )
    routing.install(app)
    login.install(app)

    @app.get("/health")
    def health() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | HTTPException:
        if not request.path.startswith("/api/0/"):
            return exc
        detail = exc.description or exc.name
        if exc.code == 404:
            detail = f"no such API route: {request.method} {request.path}"
        elif exc.code == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        return error_response(exc.code or 500, detail)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal error")

    return app
