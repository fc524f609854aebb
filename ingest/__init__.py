"""The ingest service: where every SDK sends its events."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from core import db
from core.blobs import blob_store
from core.redis import redis_client
from core.settings import Settings, get_settings
from ingest import api, metrics
from ingest.api import Answer, Request, json_response
from ingest.api import bp as api_blueprint
from ingest.auth import KeyCache
from ingest.queue import LandingQueue
from ingest.state import IngestState, parse_user_agent


def http_error(exc: HTTPException) -> Answer:
    return json_response(exc.code or 500, {"detail": exc.description})


def unexpected(app: Flask, exc: Exception) -> Answer:
    app.logger.exception("unexpected error in ingest", exc_info=exc)
    return json_response(500, {"detail": "internal error; the event was not accepted"})


_INGEST_POST = re.compile(r"/api/([0-9]+)/(envelope|store|events)/")


class IngestFastPath:
    """WSGI middleware: a POST to an ingest endpoint goes straight to its handler.

    Flask's request context, routing and response finalisation cost ~145 µs a request, a
    large share of the hot path. The handlers need none of it (they take the request and the
    state explicitly), so POSTs to /api/<id>/(envelope|store|events)/ skip Flask; everything
    else, OPTIONS included, goes to Flask. Errors are answered as Flask's handlers would.
    """

    def __init__(self, app: Flask, state: IngestState) -> None:
        self.app = app
        self.flask_wsgi = app.wsgi_app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        match = (
            _INGEST_POST.fullmatch(environ.get("PATH_INFO") or "")
            if environ.get("REQUEST_METHOD") == "POST"
            else None
        )
        if match is None:
            return self.flask_wsgi(environ, start_response)
        try:
            response = api.guarded(match[2], Request(environ), self.state, int(match[1]))
        except HTTPException as exc:
            response = http_error(exc)
        except Exception as exc:  # noqa: BLE001 - answered as Flask's handler does
            response = unexpected(self.app, exc)
        return response(environ, start_response)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    # Key lookups must fail fast when PostgreSQL is unreachable (ingest then serves cached
    # keys or answers 503), not wait for the OS's TCP timeout or a free pool connection;
    # and when it is reachable but stuck (a migration or VACUUM FULL holding a lock on the
    # keys, an overloaded server), not hold the request threads past 3 s either.
    engine = db.make_engine(settings.database_url, pool_size=4, max_overflow=4, pool_timeout=5,
                            connect_args={"connect_timeout": 3,
                                          "options": "-c statement_timeout=3000"})
    # The timeout also bounds /health's ping: a silent Redis answers 503, not a hang.
    redis = redis_client(settings.redis_url, socket_timeout=settings.ingest_redis_timeout_seconds)
    state = app.extensions["pulsetrace_ingest"] = IngestState(
        settings=settings,
        engine=engine,
        keys=KeyCache(engine, settings.ingest_key_cache_seconds),
        queue=LandingQueue(redis, settings.ingest_rate_limit_window_seconds,
                           read_timeout=settings.ingest_redis_timeout_seconds),
        blobs=blob_store(settings),
    )
    parse_user_agent("Mozilla/5.0")  # loads the parser's rules now, not in the first request
    app.register_blueprint(api_blueprint)

    @app.get("/health")
    def health() -> Answer:
        try:
            redis.ping()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return json_response(503, {"status": "unhealthy", "redis": str(exc)})
        return json_response(200, {"status": "ok"})

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, lambda exc: unexpected(app, exc))
    app.wsgi_app = IngestFastPath(app, state)  # type: ignore[method-assign]
    return app
