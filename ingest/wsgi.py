"""The WSGI entry point for the production server: `granian --interface wsgi ingest.wsgi:app`."""

from ingest import create_app

app = create_app()
