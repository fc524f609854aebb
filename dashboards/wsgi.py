"""The WSGI entry point: `granian --interface wsgi dashboards.wsgi:app`."""

from dashboards.server import create_app

app = create_app()
