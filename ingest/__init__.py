"""The ingest service: where every SDK sends its events."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from core import db
from core.redis import redis_client
from core.settings import Settings, get_settings
from ingest import metrics
from ingest.api import bp as api_blueprint
from ingest.api import json_response
from ingest.auth import KeyCache
from ingest.queue import LandingQueue
from ingest.state import IngestState, parse_user_agent


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    engine = db.make_engine(settings.database_url, pool_size=4, max_overflow=4)
    redis = redis_client(settings.redis_url)
    app.extensions["pulsetrace_ingest"] = IngestState(
        settings=settings,
        engine=engine,
        keys=KeyCache(engine, settings.ingest_key_cache_seconds),
        queue=LandingQueue(redis, settings.ingest_rate_limit_window_seconds),
    )
    parse_user_agent("Mozilla/5.0")  # loads the parser's rules now, not in the first request
    app.register_blueprint(api_blueprint)

    @app.get("/health")
    def health() -> Response:
        try:
            redis.ping()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return json_response(503, {"status": "unhealthy", "redis": str(exc)})
        return json_response(200, {"status": "ok"})

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return json_response(exc.code or 500, {"detail": exc.description})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("unexpected error in ingest", exc_info=exc)
        return json_response(500, {"detail": "internal error; the event was not accepted"})

    return app
