"""Event levels: Sentry's five, and the other names SDKs and logging libraries send for them
(Python's `WARNING`, `critical`, syslog's `notice`), matched in lower case."""

from __future__ import annotations

SENTRY_LEVEL = {
    "fatal": "fatal", "critical": "fatal", "error": "error", "warning": "warning",
    "warn": "warning", "info": "info", "log": "info", "notice": "info", "debug": "debug",
    "trace": "debug",
}
