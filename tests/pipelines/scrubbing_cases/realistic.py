"""Realistic raw events (~2 KB of JSON each) as SDKs send them, for the scrubbing benchmark
and the end-to-end scrubbing test: browser and Node errors, Django errors with frame
variables, log messages. A share of them carry personal data; `SECRETS` lists every secret
string planted, so a test can check that none survives."""

from __future__ import annotations

import random
from typing import Any

import orjson

# Every secret planted below contains one of these; none may survive scrubbing.
SECRETS = ("jane.doe", "4111 1111 1111 1111", "hunter2", "eyJhbGciOiJIUzI1NiJ9",
           "dXNlcjpodW50ZXIy", "s3cr3tP4ss", "tok_live_9f8e7d", "DE89370400440532013000",
           "123-45-6789", "sess_77ab19")


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _breadcrumbs(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"timestamp": 1767225600.5 + i, "category": category, "message": message,
         "level": "info"}
        for i, (category, message) in enumerate([
            ("ui.click", "button#checkout.btn-primary > span"),
            ("navigation", "/cart -> /checkout"),
            ("console", f"Loaded {rng.randint(2, 40)} items in {rng.randint(5, 900)}ms"),
        ])
    ] + [{"timestamp": 1767225604.25, "category": "fetch", "type": "http",
          "data": {"url": f"/api/cart/{rng.randint(1, 99999)}?page=1", "method": "GET",
                   "status_code": rng.choice([200, 200, 500, 502])}}]


def browser_event(rng: random.Random) -> dict[str, Any]:
    bundle = f"https://shop.example.com/static/js/main.{_hex(rng, 32)}.js"
    return {
        "event_id": _hex(rng, 128), "timestamp": 1767225610.125, "platform": "javascript",
        "level": "error", "release": "web@2.3.0", "environment": "production",
        "exception": {"values": [{
            "type": rng.choice(["TypeError", "ReferenceError", "RangeError"]),
            "value": rng.choice(["Cannot read properties of undefined (reading 'price')",
                                 "cart is not defined", "Invalid array length"]),
            "mechanism": {"type": "onerror", "handled": False},
            "stacktrace": {"frames": [
                {"filename": bundle, "function": name, "lineno": 1,
                 "colno": rng.randint(100, 90000), "in_app": True}
                for name in ("onClick", "dispatch", "handleCheckout", "n", "t")]},
        }]},
        "breadcrumbs": _breadcrumbs(rng),
        "request": {"url": "https://shop.example.com/checkout",
                    "headers": {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
                                " AppleWebKit/537.36 Chrome/125.0 Safari/537.36",
                                "Referer": "https://shop.example.com/cart"}},
        "contexts": {"trace": {"trace_id": _hex(rng, 128), "span_id": _hex(rng, 64)}},
        "tags": {"locale": "en-US", "plan": rng.choice(["free", "pro"])},
        "sdk": {"name": "sentry.javascript.browser", "version": "8.9.2",
                "integrations": ["InboundFilters", "FunctionToString", "BrowserApiErrors",
                                 "Breadcrumbs", "GlobalHandlers", "LinkedErrors", "Dedupe"],
                "packages": [{"name": "npm:@sentry/browser", "version": "8.9.2"}]},
    }


def django_event(rng: random.Random) -> dict[str, Any]:
    frames = [{
        "filename": f"shop/views/checkout_{i}.py", "function": f"step_{i}",
        "module": f"shop.views.checkout_{i}", "lineno": 40 + 7 * i, "in_app": True,
        "context_line": f"    total = cart.total(discount=discount_{i})",
        "vars": {"self": "<CheckoutView object at 0x7f3a2c1b9e50>",
                 "order_id": rng.randint(10**6, 10**9), "discount": "0.15",
                 "cart": {"items": rng.randint(1, 9), "currency": "EUR"}},
    } for i in range(3)]
    return {
        "event_id": _hex(rng, 128), "timestamp": 1767225610.25, "platform": "python",
        "level": "error", "release": "shop@1.4.2", "server_name": f"web-{rng.randint(1, 20)}",
        "exception": {"values": [{
            "type": "ValueError",
            "value": f"invalid discount for order {rng.randint(10**5, 10**7)}",
            "mechanism": {"type": "django", "handled": False}, "stacktrace": {"frames": frames}}]},
        "breadcrumbs": {"values": [
            {"timestamp": 1767225601.5, "category": "query", "level": "info",
             "message": 'SELECT "shop_order"."id" FROM "shop_order" WHERE "id" = '
                        f"{rng.randint(1, 9999)}"},
        ]},
        "request": {"url": "https://shop.example.com/checkout/", "method": "POST",
                    "query_string": "step=2",
                    "headers": {"Host": "shop.example.com", "Accept": "text/html",
                                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"},
                    "env": {"SERVER_NAME": "web-3", "SERVER_PORT": "8000"}},
        "contexts": {"runtime": {"name": "CPython", "version": "3.11.7"},
                     "trace": {"trace_id": _hex(rng, 128), "span_id": _hex(rng, 64)}},
        "user": {"id": str(rng.randint(1, 10**6))},
        "sdk": {"name": "sentry.python.django", "version": "2.75.0",
                "integrations": ["django", "logging", "stdlib", "excepthook", "dedupe"],
                "packages": [{"name": "pypi:sentry-sdk", "version": "2.75.0"}]},
    }


def log_event(rng: random.Random) -> dict[str, Any]:
    return {
        "event_id": _hex(rng, 128), "timestamp": 1767225610.5, "platform": "node",
        "level": "warning", "release": "api@5.0.1", "environment": "production",
        "logentry": {"message": "payment %s failed after %d retries",
                     "params": [f"pi_{_hex(rng, 48)}", rng.randint(1, 5)]},
        "breadcrumbs": _breadcrumbs(rng),
        "contexts": {"runtime": {"name": "node", "version": "v20.11.1"},
                     "os": {"name": "Linux", "version": "6.1"},
                     "trace": {"trace_id": _hex(rng, 128), "span_id": _hex(rng, 64)}},
        "tags": {"service": "payments", "region": "eu-west-1"},
        "extra": {"attempt_ids": [rng.randint(10**8, 10**9) for _ in range(5)],
                  "queue": "payments-high", "elapsed_ms": rng.randint(5, 9000)},
        "sdk": {"name": "sentry.javascript.node", "version": "8.9.2"},
    }


def add_personal_data(event: dict[str, Any], rng: random.Random) -> None:
    """Plant one or two kinds of secret where applications leak them."""
    request = event.setdefault("request", {})
    headers = request.setdefault("headers", {})
    for kind in rng.sample(range(8), 2):
        if kind == 0:
            event["user"] = {**event.get("user", {}), "email": "jane.doe@example.com",
                             "ip_address": "{{auto}}"}
        elif kind == 1:
            headers["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
            headers["Cookie"] = "sessionid=sess_77ab19; csrftoken=abc123"
        elif kind == 2:
            request["data"] = {"username": "jane", "password": "hunter2"}
        elif kind == 3:
            event.setdefault("extra", {})["note"] = "paid with card 4111 1111 1111 1111"
        elif kind == 4:
            crumbs = event.setdefault("breadcrumbs", [])
            crumbs = crumbs["values"] if isinstance(crumbs, dict) else crumbs
            crumbs.append({"category": "db",
                           "message": "connect postgres://app:s3cr3tP4ss@db.internal/shop"})
        elif kind == 5:
            request["url"] = "https://shop.example.com/callback?token=tok_live_9f8e7d&step=3"
        elif kind == 6:
            event.setdefault("extra", {})["refund"] = {"iban": "DE89370400440532013000",
                                                       "ssn": "123-45-6789"}
        else:
            headers["X-Debug"] = "Basic dXNlcjpodW50ZXIy"


def realistic_payloads(count: int, seed: int = 7, personal_share: float = 0.1) -> list[str]:
    rng = random.Random(seed)
    makers = (browser_event, browser_event, django_event, django_event, log_event)
    payloads = []
    for _ in range(count):
        event = rng.choice(makers)(rng)
        if rng.random() < personal_share:
            add_personal_data(event, rng)
        payloads.append(orjson.dumps(event).decode())
    return payloads
