"""An app that reports an error with two attachments through the real sentry-sdk
(`scope.add_attachment`), as a user's app would.

Usage: python attachment_app.py DSN; prints the event's id.
"""

from __future__ import annotations

import sys

import sentry_sdk

LOG = b"09:41:02 POST /api/cart 500\n09:41:03 retrying payment\n"
SCREENSHOT = bytes(range(256)) * 40  # binary: every byte value


def main() -> None:
    sentry_sdk.init(dsn=sys.argv[1], default_integrations=False)
    with sentry_sdk.new_scope() as scope:
        scope.add_attachment(bytes=LOG, filename="cart.log", content_type="text/plain")
        scope.add_attachment(bytes=SCREENSHOT, filename="screen shot (1).png",
                             content_type="image/png")
        event_id = sentry_sdk.capture_message("checkout failed", level="error")
    sentry_sdk.flush(timeout=10)
    print(event_id)


if __name__ == "__main__":
    main()
