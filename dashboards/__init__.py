"""The dashboard server: the management REST API (dashboards.api) and browser sign-in; the
Dash app mounts on the same Flask server."""
