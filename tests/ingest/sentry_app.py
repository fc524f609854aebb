"""A small app that reports to PulseTrace with the real sentry-sdk, as a user's app would.

Usage: python sentry_app.py DSN COMPRESSION(gzip|br|none) RUN_ID; prints JSON of event ids.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk


class PaymentDeclined(Exception):
    pass


def charge(order_id: int) -> None:
    try:
        {"cents": 100}["amount"]
    except KeyError as exc:
        raise PaymentDeclined(f"order {order_id} could not be charged") from exc


def main() -> None:
    dsn, compression, run_id = sys.argv[1], sys.argv[2], sys.argv[3]
    experiments: dict[str, object] = (
        {"transport_compression_level": 0}
        if compression == "none"
        else {"transport_compression_algo": compression}
    )
    sentry_sdk.init(
        dsn=dsn, release="shop@1.0.4", environment="production", _experiments=experiments,
        default_integrations=False,
    )
    sentry_sdk.set_user({"id": "user-42", "email": "jane@example.com"})
    sentry_sdk.set_tag("run", run_id)
    sentry_sdk.set_tag("checkout.step", "payment")
    sentry_sdk.add_breadcrumb(category="ui.click", message="clicked Pay", level="info")
    sentry_sdk.add_breadcrumb(category="http", data={"url": "/api/cart", "status_code": 200})
    ids = {}
    try:
        charge(1234)
    except PaymentDeclined as exc:
        ids["exception"] = sentry_sdk.capture_exception(exc)
    ids["message"] = sentry_sdk.capture_message("inventory low for SKU-9", level="warning")
    sentry_sdk.flush(timeout=10)
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
