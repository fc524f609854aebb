"""A deterministic grouping test set: distinct bugs, each seen as many events whose data varies.

Each bug is a function that builds the error part of an event (exception, message,
fingerprint) from a `Variation`: a random generator seeded per event plus the release the
event comes from. What varies between events of one bug is what varies in production: ids,
timestamps, emails, IPs, users and tags, breadcrumbs, line and column numbers (each release
moves the code), content-hashed bundle names and query strings, minified names (each build
renames them), library frames above and below the app's frames, recursion depth, how many
tasks of an exception group failed. What does not vary is the bug: the code that fails.

The bugs are close to each other on purpose: the same exception type in different functions,
the same function raising different types, the same wrapper exception with different causes,
the same message template with different data versus different templates.

`python -m tests.pipelines.grouping_set out.jsonl` writes the set as JSON lines
(`{"bug": ..., "strategy": ..., "event": {...}}`) for a look or for another tool.
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

Json = dict[str, Any]

SEED = 20241127
EVENTS_PER_BUG = 20


@dataclass(frozen=True)
class Release:
    name: str
    line_shift: int  # how far this release moved the code
    bundle_hash: str  # webpack content hash of main.js
    vendor_hash: str
    minified: tuple[str, ...]  # the names the minifier gave our functions in this build
    cglib_hash: str  # Spring's proxy class suffix
    lambda_index: int  # javac numbers lambdas in order of appearance


RELEASES = (
    Release("shop@1.4.0", 0, "3f9c1a2b", "a1b2c3d4", ("t", "e", "n", "r"), "8f3a2b1c", 0),
    Release("shop@1.4.1", 3, "77e0d9c4", "a1b2c3d4", ("e", "o", "a", "i"), "5d6e7f80", 0),
    Release("shop@1.5.0", 17, "0be81f5a", "9c8d7e6f", ("Xe", "n", "Qt", "s"), "1a2b3c4d", 2),
)


@dataclass
class Variation:
    """What one event of a bug varies in."""

    rng: random.Random
    release: Release

    def line(self, base: int) -> int:
        return base + self.release.line_shift

    def hex(self, length: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(length))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def email(self) -> str:
        name = self.rng.choice(["ana", "bo", "chen", "dmitri", "eve", "fatima", "zoë"])
        domain = self.rng.choice(["example.com", "mail.example.org", "corp.example.net"])
        return f"{name}.{self.rng.randint(1, 9999)}@{domain}"

    def ipv4(self) -> str:
        return ".".join(str(self.rng.randint(1, 254)) for _ in range(4))

    def ipv6(self) -> str:
        return "2001:db8:" + ":".join(f"{self.rng.randint(0, 0xFFFF):x}" for _ in range(6))

    def timestamp(self) -> datetime:
        return datetime(2024, 11, 1, tzinfo=UTC) + timedelta(
            seconds=self.rng.randint(0, 30 * 86400), milliseconds=self.rng.randint(0, 999))

    def iso(self) -> str:
        return self.timestamp().isoformat().replace("+00:00", "Z")

    def base62(self, length: int) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def cdn(self) -> str:
        return self.rng.choice(["https://cdn.shop.example", "https://static2.shop.example"])


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------


def py_frame(v: Variation, module: str, function: str, line: int, context: str,
             in_app: bool = True) -> Json:
    path = module.replace(".", "/") + ".py"
    root = f"/srv/shop/releases/{v.release.name.split('@')[1]}" if in_app else (
        "/usr/local/lib/python3.11/site-packages")
    return {
        "module": module, "function": function, "filename": path,
        "abs_path": f"{root}/{path}", "lineno": v.line(line) if in_app else line,
        "context_line": f"    {context}", "pre_context": ["", "    # ..."],
        "post_context": ["", ""], "in_app": in_app,
        "vars": {"request_id": v.uuid(), "attempt": v.rng.randint(1, 3)},
    }


_PY_LIBRARY_ABOVE = [
    ("django.core.handlers.exception", "inner", 55, "response = get_response(request)"),
    ("django.core.handlers.base", "_get_response", 197, "response = wrapped_callback("),
    ("django.utils.deprecation", "__call__", 134, "response = self.get_response(request)"),
    ("sentry_sdk.integrations.django.views", "sentry_wrapped_callback", 90,
     "return callback(request, *args, **kwargs)"),
]
_PY_LIBRARY_BELOW = [
    ("django.db.models.query", "get", 633, "num = len(clone)"),
    ("decimal", "__add__", 1180, "return NotImplemented"),
    ("json.decoder", "decode", 337, "obj, end = self.raw_decode(s, idx=_w(s, 0).end())"),
]


def py_stack(v: Variation, app_frames: list[Json], below: bool = True) -> Json:
    """The app's frames with a varying number of library frames above (callers) and,
    sometimes, below (callees): middleware stacks and library internals change per request
    and per library version."""
    above = v.rng.sample(_PY_LIBRARY_ABOVE, v.rng.randint(1, len(_PY_LIBRARY_ABOVE)))
    frames = [py_frame(v, m, f, ln + v.rng.randint(0, 9), c, in_app=False)
              for m, f, ln, c in above]
    frames += app_frames
    if below and v.rng.random() < 0.5:
        m, f, ln, c = v.rng.choice(_PY_LIBRARY_BELOW)
        frames.append(py_frame(v, m, f, ln, c, in_app=False))
    return {"frames": frames}


def js_frame(v: Variation, path: str, function: str, line: int, context: str) -> Json:
    """A symbolicated browser frame (the SDK does not say what is in-app)."""
    return {
        "filename": f"webpack://shop/./{path}", "abs_path": f"webpack://shop/./{path}",
        "function": function, "lineno": v.line(line), "colno": v.rng.randint(5, 40),
        "context_line": context, "pre_context": ["", "  // ..."], "post_context": ["}"],
    }


_JS_LIBRARY = [
    ("node_modules/react-dom/cjs/react-dom.production.min.js", "callCallback", 3945),
    ("node_modules/react-dom/cjs/react-dom.production.min.js", "invokeGuardedCallbackDev", 3994),
    ("node_modules/react-dom/cjs/react-dom.production.min.js", "dispatchEvent", 4291),
    ("node_modules/scheduler/cjs/scheduler.production.min.js", "workLoop", 266),
    ("node_modules/react-router/dist/index.js", "RenderedRoute", 88),
]


def js_library_frames(v: Variation) -> list[Json]:
    chosen = v.rng.sample(_JS_LIBRARY, v.rng.randint(1, 4))
    return [{"filename": f"webpack://shop/./{path}", "function": function,
             "lineno": line + v.rng.randint(0, 50), "colno": v.rng.randint(1, 9000)}
            for path, function, line in chosen]


def js_minified_frames(v: Variation, depth: int) -> list[Json]:
    """Frames of a build without source maps: one long line, names chosen by the minifier."""
    query = f"?v={v.rng.randint(1000, 9999)}"
    main = f"{v.cdn()}/static/js/main.{v.release.bundle_hash}.js{query}"
    vendor = f"{v.cdn()}/static/js/vendors~main.{v.release.vendor_hash}.chunk.js"
    caller = v.rng.choice(["Ja", "Xo", "e.unstable_runWithPriority"])
    frames = [{"filename": vendor, "function": caller, "lineno": 2,
               "colno": v.rng.randint(1, 90000)}]
    for level in range(depth):
        frames.append({"filename": main, "function": v.release.minified[level],
                       "lineno": 1, "colno": v.rng.randint(1, 60000) + level})
    return frames


def node_frame(v: Variation, module: str, function: str, line: int, context: str) -> Json:
    path = module.replace(":", "/") + ".js"
    return {"filename": f"/srv/app-{v.rng.randint(1, 4)}/{path}", "module": module,
            "function": function, "lineno": v.line(line), "colno": v.rng.randint(3, 30),
            "context_line": context}


def node_library_frames(v: Variation) -> list[Json]:
    frames = [
        {"filename": "/srv/app/node_modules/express/lib/router/layer.js", "function": "handle",
         "module": "express.lib.router:layer", "lineno": 95},
        {"filename": "node:internal/process/task_queues",
         "function": "process.processTicksAndRejections", "lineno": 95},
    ]
    return v.rng.sample(frames, v.rng.randint(1, 2))


def java_frame(v: Variation, module: str, function: str, line: int,
               in_app: bool = True) -> Json:
    return {"module": module, "function": function,
            "filename": module.rsplit(".", 1)[-1].split("$")[0] + ".java",
            "lineno": v.line(line) if in_app else line, "in_app": in_app}


_JAVA_LIBRARY = [
    ("org.springframework.web.servlet.FrameworkServlet", "service", 883),
    ("org.springframework.web.servlet.DispatcherServlet", "doDispatch", 1072),
    ("jakarta.servlet.http.HttpServlet", "service", 590),
    ("org.apache.catalina.core.ApplicationFilterChain", "doFilter", 166),
    ("org.springframework.aop.framework.CglibAopProxy$DynamicAdvisedInterceptor", "intercept",
     713),
]


def java_stack(v: Variation, app: list[tuple[str, str, int]]) -> Json:
    above = v.rng.sample(_JAVA_LIBRARY, v.rng.randint(2, len(_JAVA_LIBRARY)))
    frames = [java_frame(v, m, f, ln + v.rng.randint(0, 5), in_app=False) for m, f, ln in above]
    frames += [java_frame(v, m, f, ln) for m, f, ln in app]
    return {"frames": frames}


def order_service_frames(v: Variation, method: str, line: int) -> list[tuple[str, str, int]]:
    """A Spring bean method: called through a CGLIB proxy (its class name carries a hash per
    build) and running a lambda (javac numbers lambdas in order of appearance)."""
    service = "com.acme.orders.OrderService"
    return [
        ("com.acme.orders.OrderController", "create", 41),
        (f"{service}$$EnhancerBySpringCGLIB$${v.release.cglib_hash}", method, -1),
        (service, method, line),
        (f"{service}$$Lambda${v.rng.randint(80, 300)}/0x{v.hex(16)}", "apply", -1),
        (service, f"lambda${method}${v.release.lambda_index}", line + 6),
    ]


def exception(exc_type: str, value: str, stacktrace: Json | None = None,
              module: str | None = None, mechanism: Json | None = None) -> Json:
    exc: Json = {"type": exc_type, "value": value}
    if module:
        exc["module"] = module
    if stacktrace is not None:
        exc["stacktrace"] = stacktrace
    exc["mechanism"] = mechanism or {"type": "generic", "handled": True}
    return exc


# ---------------------------------------------------------------------------------------------
# The bugs
# ---------------------------------------------------------------------------------------------

Builder = Callable[[Variation], Json]


@dataclass(frozen=True)
class Bug:
    name: str
    strategy: str
    platform: str
    build: Builder


def _cart_view(v: Variation) -> Json:
    return py_frame(v, "shop.views.cart", "cart_add", 27, "cart.add_item(request.POST)")


def py_keyerror_add_item(v: Variation) -> Json:
    frames = [_cart_view(v), py_frame(v, "shop.cart", "add_item", 54,
                                      'price = PRICES[item["sku"]]')]
    return {"exception": {"values": [exception(
        "KeyError", f"'sku-{v.rng.randint(100, 99999)}'", py_stack(v, frames))]}}


def py_keyerror_remove_item(v: Variation) -> Json:
    frames = [_cart_view(v), py_frame(v, "shop.cart", "remove_item", 71,
                                      "del self.items[sku]")]
    return {"exception": {"values": [exception(
        "KeyError", f"'sku-{v.rng.randint(100, 99999)}'", py_stack(v, frames))]}}


def py_valueerror_add_item(v: Variation) -> Json:
    frames = [_cart_view(v), py_frame(v, "shop.cart", "add_item", 58,
                                      'raise ValueError(f"Invalid quantity {qty} for {sku}")')]
    return {"exception": {"values": [exception(
        "ValueError", f"Invalid quantity {v.rng.randint(-5, 0)} for sku-{v.rng.randint(1, 999)}",
        py_stack(v, frames))]}}


def _charge_frames(v: Variation) -> list[Json]:
    return [
        py_frame(v, "shop.views.checkout", "pay", 88, "payments.charge(order, card)"),
        py_frame(v, "shop.payments", "charge", 112, "total = order.subtotal + order.shipping"),
    ]


def py_typeerror_charge(v: Variation) -> Json:
    return {"exception": {"values": [exception(
        "TypeError", "unsupported operand type(s) for +: 'Decimal' and 'NoneType'",
        py_stack(v, _charge_frames(v), below=False))]}}


def _payment_wrapper(v: Variation, cause: Json, library_frames: list[Json]) -> Json:
    """`raise PaymentFailed(...) from exc`: the same wrapper, raised at the same line, for
    every cause; the cause comes from the same call into the payment library."""
    call = py_frame(v, "shop.payments", "charge", 130, "charge = stripe.Charge.create(**params)")
    raise_site = py_frame(v, "shop.payments", "charge", 133,
                          'raise PaymentFailed(f"Payment for order {order.id} failed") from exc')
    cause["stacktrace"] = {"frames": [call, *library_frames]}
    main = exception("PaymentFailed", f"Payment for order {v.rng.randint(10000, 99999)} failed",
                     py_stack(v, [py_frame(v, "shop.views.checkout", "pay", 88,
                                           "payments.charge(order, card)"), raise_site]),
                     module="shop.payments")
    return {"exception": {"values": [cause, main]}}


def py_chain_card_declined(v: Variation) -> Json:
    cause = exception("CardError", f"Your card was declined. Request req_{v.base62(14)}",
                      module="stripe.error")
    return _payment_wrapper(v, cause, [py_frame(
        v, "stripe.api_requestor", "handle_error_response", 410, "raise err", in_app=False)])


def py_chain_provider_unreachable(v: Variation) -> Json:
    cause = exception(
        "ConnectionError",
        f"HTTPSConnectionPool(host='api.stripe.com', port=443): Max retries exceeded with url: "
        f"/v1/charges (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object "
        f"at 0x{v.hex(12)}>: Failed to establish a new connection: [Errno 111]'))",
        module="requests.exceptions")
    return _payment_wrapper(v, cause, [
        py_frame(v, "stripe.http_client", "request", 301, "result = self._session.request(",
                 in_app=False),
        py_frame(v, "requests.adapters", "send", 519, "raise ConnectionError(e, request=request)",
                 in_app=False),
    ])


def py_valueerror_email_no_stack(v: Variation) -> Json:
    return {"exception": {"values": [exception(
        "ValueError", f"Invalid email address: {v.email()}x (user {v.uuid()})")]}}


def py_valueerror_phone_no_stack(v: Variation) -> Json:
    phone = f"+{v.rng.randint(1, 99)} {v.rng.randint(100, 999)} {v.rng.randint(1000, 9999)}"
    return {"exception": {"values": [exception(
        "ValueError", f"Invalid phone number: '{phone}' (user {v.uuid()})")]}}


def py_attribute_error_email_no_stack(v: Variation) -> Json:
    return {"exception": {"values": [exception(
        "AttributeError", "'NoneType' object has no attribute 'email'")]}}


def py_attribute_error_id_no_stack(v: Variation) -> Json:
    return {"exception": {"values": [exception(
        "AttributeError", "'NoneType' object has no attribute 'id'")]}}


def _log(v: Variation, template: str, params: list[Any]) -> Json:
    return {"logger": "shop.orders", "level": "error",
            "logentry": {"message": template, "params": params,
                         "formatted": template % tuple(params)}}


def py_log_order_declined(v: Variation) -> Json:
    return _log(v, "Order %s failed: payment declined for %s",
                [v.rng.randint(10000, 99999), v.email()])


def py_log_order_out_of_stock(v: Variation) -> Json:
    return _log(v, "Order %s failed: out of stock for %s",
                [v.rng.randint(10000, 99999), f"sku-{v.rng.randint(1, 999)}"])


def py_message_webhook_failed(v: Variation) -> Json:
    tenant = v.rng.choice(["acme", "globex", "initech"])
    url = (f"https://hooks.{tenant}.example.com/h/{v.hex(12)}?sig={v.hex(40)}"
           f"&ts={v.rng.randint(1700000000, 1800000000)}")
    return {"message": (
        f"Webhook {v.uuid()} delivery to {url} failed after {v.rng.randint(2, 9)} retries at "
        f"{v.iso()} from {v.ipv4()}: HTTP {v.rng.choice([500, 502, 503])}"),
        "level": "warning", "logger": "shop.webhooks"}


def py_message_webhook_timed_out(v: Variation) -> Json:
    url = f"https://hooks.example.com/h/{v.hex(12)}?sig={v.hex(40)}"
    return {"message": (
        f"Webhook {v.uuid()} delivery to {url} timed out after {v.rng.randint(2, 30)}s at "
        f"{v.iso()} from {v.ipv6()}"),
        "level": "warning", "logger": "shop.webhooks"}


def py_custom_gateway_timeout(v: Variation) -> Json:
    function = v.rng.choice(["charge", "refund", "capture"])
    frames = [py_frame(v, "shop.payments", function, v.rng.choice([140, 180, 220]),
                       "resp = gateway.post(path, json=body, timeout=5)")]
    return {"exception": {"values": [exception(
        "TimeoutError", f"timed out after {v.rng.randint(5, 30)}s", py_stack(v, frames))]},
        "fingerprint": ["payment-gateway-timeout"]}


def py_custom_default_replica(v: Variation) -> Json:
    """The same crash as `py_typeerror_charge`, tagged by the SDK as a separate issue."""
    event = py_typeerror_charge(v)
    event["fingerprint"] = [v.rng.choice(["{{ default }}", "{{default}}"]), "db-replica"]
    return event


def py_only_library_disallowed_host(v: Variation) -> Json:
    host = f"{v.ipv4()}" if v.rng.random() < 0.5 else f"scan-{v.rng.randint(1, 999)}.example.net"
    frames = [
        py_frame(v, "django.core.handlers.exception", "inner", 55,
                 "response = get_response(request)", in_app=False),
        py_frame(v, "django.middleware.common", "process_request", 48,
                 "host = request.get_host()", in_app=False),
        py_frame(v, "django.http.request", "get_host", 150, "raise DisallowedHost(msg)",
                 in_app=False),
    ]
    return {"exception": {"values": [exception(
        "DisallowedHost",
        f"Invalid HTTP_HOST header: '{host}'. You may need to add '{host}' to ALLOWED_HOSTS.",
        {"frames": frames}, module="django.core.exceptions")]}}


def py_only_library_db_unavailable(v: Variation) -> Json:
    frames = [
        py_frame(v, "django.core.handlers.exception", "inner", 55,
                 "response = get_response(request)", in_app=False),
        py_frame(v, "django.db.backends.base.base", "connect", 270,
                 "self.connection = self.get_new_connection(conn_params)", in_app=False),
        py_frame(v, "psycopg.connection", "connect", 748, "raise last_ex.with_traceback(None)",
                 in_app=False),
    ]
    return {"exception": {"values": [exception(
        "OperationalError",
        f'connection to server at "10.0.{v.rng.randint(0, 9)}.{v.rng.randint(2, 250)}", port '
        f"5432 failed: Connection refused",
        {"frames": frames}, module="django.db.utils")]}}


def py_recursion(v: Variation) -> Json:
    walk = py_frame(v, "shop.catalog.tree", "walk", 19, "for child in node.children: walk(child)")
    frames = [py_frame(v, "shop.catalog.views", "category", 12, "tree.walk(root)")]
    frames += [dict(walk, vars={"depth": depth}) for depth in range(v.rng.randint(3, 60))]
    frames.append(py_frame(v, "shop.catalog.tree", "walk", 17,
                           "if node.parent.slug in SEEN: return"))
    return {"exception": {"values": [exception(
        "RecursionError", "maximum recursion depth exceeded while calling a Python object",
        py_stack(v, frames, below=False))]}}


def _group(v: Variation, leaves: list[Json]) -> Json:
    """A Python ExceptionGroup as the SDK sends it: leaves first, the group last, linked."""
    values = []
    for index, leaf in enumerate(leaves, start=1):
        leaf["mechanism"] = {"type": "chained", "source": f"exceptions[{index - 1}]",
                             "exception_id": index, "parent_id": 0}
        values.append(leaf)
    group = exception(
        "ExceptionGroup", f"unhandled errors in a TaskGroup ({len(leaves)} sub-exceptions)",
        py_stack(v, [py_frame(v, "shop.jobs", "nightly", 30, "async with TaskGroup() as tg:")],
                 below=False),
        mechanism={"type": "generic", "handled": False, "is_exception_group": True,
                   "exception_id": 0})
    return {"exception": {"values": [*values, group]}}


def _sync_inventory_error(v: Variation) -> Json:
    frames = [py_frame(v, "shop.jobs", "sync_inventory", 61,
                       "raise ValueError(f'bad stock level {level} for {sku}')")]
    return exception("ValueError", f"bad stock level {v.rng.randint(-9, -1)} for "
                     f"sku-{v.rng.randint(1, 999)}", {"frames": frames})


def _sync_prices_error(v: Variation) -> Json:
    frames = [py_frame(v, "shop.jobs", "sync_prices", 84, "price = feed[sku]")]
    return exception("KeyError", f"'sku-{v.rng.randint(1, 999)}'", {"frames": frames})


def py_exception_group_inventory(v: Variation) -> Json:
    return _group(v, [_sync_inventory_error(v) for _ in range(v.rng.randint(1, 4))])


def py_exception_group_inventory_and_prices(v: Variation) -> Json:
    leaves = [_sync_inventory_error(v) for _ in range(v.rng.randint(1, 3))]
    leaves += [_sync_prices_error(v) for _ in range(v.rng.randint(1, 3))]
    v.rng.shuffle(leaves)
    return _group(v, leaves)


def py_fallback_health(v: Variation) -> Json:
    return {"level": "warning", "logger": "shop.health", "extra": {"probe": v.uuid()}}


def py_fallback_metrics(v: Variation) -> Json:
    return {"level": "warning", "logger": "shop.metrics", "extra": {"probe": v.uuid()}}


def _js_error(v: Variation, exc_type: str, value: str, app: list[Json]) -> Json:
    frames = js_library_frames(v)
    # React calls the handler: library frames sit above the app's frames.
    frames = frames[: len(frames) // 2 + 1] + app + frames[len(frames) // 2 + 1:][:1]
    return {"exception": {"values": [exception(
        exc_type, value, {"frames": frames},
        mechanism={"type": "onerror", "handled": False})]}}


def _cart_page(v: Variation) -> Json:
    return js_frame(v, "src/components/CartPage.jsx", "handleClick", 42,
                    "  onClick={() => checkout(cart, user)}")


def js_checkout_reading_email(v: Variation) -> Json:
    return _js_error(v, "TypeError", "Cannot read properties of undefined (reading 'email')", [
        _cart_page(v),
        js_frame(v, "src/cart.js", "checkout", 17, "  const email = user.profile.email;"),
    ])


def js_apply_coupon_reading_email(v: Variation) -> Json:
    return _js_error(v, "TypeError", "Cannot read properties of undefined (reading 'email')", [
        _cart_page(v),
        js_frame(v, "src/cart.js", "applyCoupon", 64, "  notify(user.profile.email, coupon);"),
    ])


def js_checkout_map_not_a_function(v: Variation) -> Json:
    return _js_error(v, "TypeError", "cart.items.map is not a function", [
        _cart_page(v),
        js_frame(v, "src/cart.js", "checkout", 21, "  const lines = cart.items.map(toLine);"),
    ])


def _js_minified(v: Variation, value: str) -> Json:
    return {"exception": {"values": [exception(
        "TypeError", value, {"frames": js_minified_frames(v, 3)},
        mechanism={"type": "onerror", "handled": False})]}}


def js_minified_add_event_listener(v: Variation) -> Json:
    return _js_minified(v, "Cannot read properties of null (reading 'addEventListener')")


def js_minified_style(v: Variation) -> Json:
    return _js_minified(v, "Cannot read properties of null (reading 'style')")


def js_unhandled_rejection(v: Variation) -> Json:
    return {"exception": {"values": [exception(
        "UnhandledRejection",
        f"Non-Error promise rejection captured with value: Timeout of {v.rng.randint(1, 60)}000ms "
        f"exceeded for {v.cdn()}/api/cart/{v.uuid()}",
        mechanism={"type": "onunhandledrejection", "handled": False, "synthetic": True})]}}


def js_chunk_load(v: Variation) -> Json:
    chunk = v.rng.randint(100, 999)
    frames = [
        {"filename": "webpack://shop/webpack/runtime/jsonp chunk loading",
         "function": "__webpack_require__.f.j", "lineno": 27 + v.rng.randint(0, 3),
         "colno": v.rng.randint(1, 60)},
        {"filename": "webpack://shop/webpack/runtime/ensure chunk",
         "function": "__webpack_require__.e", "lineno": 6, "colno": 9},
    ]
    return {"exception": {"values": [exception(
        "ChunkLoadError",
        f"Loading chunk {chunk} failed.\n(error: {v.cdn()}/static/js/{chunk}."
        f"{v.release.bundle_hash}.chunk.js)",
        {"frames": frames}, mechanism={"type": "onunhandledrejection", "handled": False})]}}


def js_message_slow_checkout(v: Variation) -> Json:
    return {"message": f"Checkout took {v.rng.randint(3000, 20000)}ms for cart {v.uuid()}",
            "level": "warning"}


def _node_error(v: Variation, method: str, line: int, context: str) -> Json:
    prefix = v.rng.choice(["", "async "])  # async stack traces name the frame `async X`
    frames = node_library_frames(v)
    frames.insert(1, node_frame(v, "src:routes", "router.post", 12,
                                "  res.json(await orders[action](req.body));"))
    frames.insert(2, node_frame(v, "src:orders", f"{prefix}Orders.{method}", line, context))
    return {"exception": {"values": [exception(
        "TypeError", "Cannot read properties of undefined (reading 'id')", {"frames": frames},
        mechanism={"type": "onuncaughtexception", "handled": False})]}}


def node_orders_create(v: Variation) -> Json:
    return _node_error(v, "create", 31, "    const customerId = body.customer.id;")


def node_orders_update(v: Variation) -> Json:
    return _node_error(v, "update", 52, "    const customerId = body.customer.id;")


def _java_error(v: Variation, exc_type: str, module: str, value: str, method: str,
                line: int) -> Json:
    return {"exception": {"values": [exception(
        exc_type, value, java_stack(v, order_service_frames(v, method, line)), module=module)]}}


_NPE = 'Cannot invoke "com.acme.Customer.getEmail()" because "customer" is null'


def java_npe_place(v: Variation) -> Json:
    return _java_error(v, "NullPointerException", "java.lang", _NPE, "place", 120)


def java_npe_cancel(v: Variation) -> Json:
    return _java_error(v, "NullPointerException", "java.lang", _NPE, "cancel", 160)


def java_illegal_state_place(v: Variation) -> Json:
    return _java_error(v, "IllegalStateException", "java.lang",
                       f"Order {v.rng.randint(1, 10**9)} is already placed", "place", 120)


def _java_persistence(v: Variation, cause_type: str, cause_module: str, value: str) -> Json:
    cause = exception(cause_type, value, java_stack(v, [
        ("com.acme.orders.OrderRepository", "save", 77)]), module=cause_module)
    main = exception("OrderPersistenceException",
                     f"Could not save order {v.rng.randint(1, 10**6)}",
                     java_stack(v, [("com.acme.orders.OrderRepository", "save", 80)]),
                     module="com.acme.orders")
    return {"exception": {"values": [cause, main]}}


def java_chain_deadlock(v: Variation) -> Json:
    return _java_persistence(v, "SQLTransactionRollbackException", "java.sql",
                             "Deadlock found when trying to get lock; try restarting transaction")


def java_chain_query_timeout(v: Variation) -> Json:
    return _java_persistence(v, "SQLTimeoutException", "java.sql",
                             f"Statement cancelled after {v.rng.randint(5, 30)}000 ms")


BUGS: tuple[Bug, ...] = (
    Bug("py_keyerror_add_item", "stacktrace", "python", py_keyerror_add_item),
    Bug("py_keyerror_remove_item", "stacktrace", "python", py_keyerror_remove_item),
    Bug("py_valueerror_add_item", "stacktrace", "python", py_valueerror_add_item),
    Bug("py_typeerror_charge", "stacktrace", "python", py_typeerror_charge),
    Bug("py_chain_card_declined", "stacktrace", "python", py_chain_card_declined),
    Bug("py_chain_provider_unreachable", "stacktrace", "python", py_chain_provider_unreachable),
    Bug("py_valueerror_email_no_stack", "exception", "python", py_valueerror_email_no_stack),
    Bug("py_valueerror_phone_no_stack", "exception", "python", py_valueerror_phone_no_stack),
    Bug("py_attribute_error_email_no_stack", "exception", "python",
        py_attribute_error_email_no_stack),
    Bug("py_attribute_error_id_no_stack", "exception", "python", py_attribute_error_id_no_stack),
    Bug("py_log_order_declined", "message", "python", py_log_order_declined),
    Bug("py_log_order_out_of_stock", "message", "python", py_log_order_out_of_stock),
    Bug("py_message_webhook_failed", "message", "python", py_message_webhook_failed),
    Bug("py_message_webhook_timed_out", "message", "python", py_message_webhook_timed_out),
    Bug("py_custom_gateway_timeout", "custom", "python", py_custom_gateway_timeout),
    Bug("py_custom_default_replica", "custom+default", "python", py_custom_default_replica),
    Bug("py_only_library_disallowed_host", "stacktrace", "python",
        py_only_library_disallowed_host),
    Bug("py_only_library_db_unavailable", "stacktrace", "python", py_only_library_db_unavailable),
    Bug("py_recursion", "stacktrace", "python", py_recursion),
    Bug("py_exception_group_inventory", "stacktrace", "python", py_exception_group_inventory),
    Bug("py_exception_group_inventory_and_prices", "stacktrace", "python",
        py_exception_group_inventory_and_prices),
    Bug("py_fallback_health", "fallback", "python", py_fallback_health),
    Bug("py_fallback_metrics", "fallback", "python", py_fallback_metrics),
    Bug("js_checkout_reading_email", "stacktrace", "javascript", js_checkout_reading_email),
    Bug("js_apply_coupon_reading_email", "stacktrace", "javascript",
        js_apply_coupon_reading_email),
    Bug("js_checkout_map_not_a_function", "stacktrace", "javascript",
        js_checkout_map_not_a_function),
    Bug("js_minified_add_event_listener", "stacktrace", "javascript",
        js_minified_add_event_listener),
    Bug("js_minified_style", "stacktrace", "javascript", js_minified_style),
    Bug("js_unhandled_rejection", "exception", "javascript", js_unhandled_rejection),
    Bug("js_chunk_load", "stacktrace", "javascript", js_chunk_load),
    Bug("js_message_slow_checkout", "message", "javascript", js_message_slow_checkout),
    Bug("node_orders_create", "stacktrace", "node", node_orders_create),
    Bug("node_orders_update", "stacktrace", "node", node_orders_update),
    Bug("java_npe_place", "stacktrace", "java", java_npe_place),
    Bug("java_npe_cancel", "stacktrace", "java", java_npe_cancel),
    Bug("java_illegal_state_place", "stacktrace", "java", java_illegal_state_place),
    Bug("java_chain_deadlock", "stacktrace", "java", java_chain_deadlock),
    Bug("java_chain_query_timeout", "stacktrace", "java", java_chain_query_timeout),
)


# ---------------------------------------------------------------------------------------------
# Whole events and the frame
# ---------------------------------------------------------------------------------------------

_SDKS = {"python": ("sentry.python", "2.75.0"), "javascript": ("sentry.javascript.react", "8.40.0"),
         "node": ("sentry.javascript.node", "8.40.0"), "java": ("sentry.java", "7.18.0")}
_ROUTES = ["/cart", "/checkout", "/orders/{id}", "/api/orders", "/account/settings"]


def _envelope(v: Variation, bug: Bug, error_part: Json) -> Json:
    """A whole event around the bug's error part: everything here varies freely."""
    timestamp = v.timestamp()
    route = v.rng.choice(_ROUTES)
    path = route.replace("{id}", str(v.rng.randint(1, 9999)))
    sdk_name, sdk_version = _SDKS[bug.platform]
    event: Json = {
        "event_id": v.hex(32),
        "timestamp": timestamp.timestamp(),
        "platform": bug.platform,
        "level": "error",
        "release": v.release.name,
        "environment": v.rng.choice(["production", "staging"]),
        "server_name": f"web-{v.rng.randint(1, 12)}",
        "transaction": route,
        "user": {"id": str(v.rng.randint(1, 10**6)), "email": v.email(), "ip_address": v.ipv4()},
        "tags": {"customer_tier": v.rng.choice(["free", "pro", "enterprise"]),
                 "locale": v.rng.choice(["en-US", "de-DE", "ja-JP", "pt-BR"]),
                 "feature_flag.new_checkout": v.rng.choice(["on", "off"])},
        "request": {"url": f"https://shop.example{path}"
                           f"?utm_source={v.rng.choice(['mail', 'ads'])}&session={v.base62(20)}",
                    "method": v.rng.choice(["GET", "POST"]),
                    "headers": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
                                "Accept-Language": "en-US,en;q=0.9"}},
        "contexts": {"trace": {"trace_id": v.hex(32), "span_id": v.hex(16), "op": "http.server"},
                     "runtime": {"name": "CPython", "version": "3.11.7"},
                     "os": {"name": v.rng.choice(["Linux", "macOS", "Windows"])}},
        "breadcrumbs": {"values": [
            {"timestamp": (timestamp - timedelta(seconds=n)).timestamp(),
             "category": v.rng.choice(["http", "navigation", "ui.click", "query"]),
             "message": f"GET /api/items/{v.rng.randint(1, 999)} [{v.rng.choice([200, 304])}]"}
            for n in range(v.rng.randint(2, 8))]},
        "sdk": {"name": sdk_name, "version": sdk_version},
        "extra": {"cart_id": v.uuid(), "items": v.rng.randint(1, 12)},
    }
    event.update(error_part)
    return event


def generate(seed: int = SEED, events_per_bug: int = EVENTS_PER_BUG,
             bugs: tuple[Bug, ...] = BUGS) -> list[tuple[Bug, Json]]:
    """Every bug's events, interleaved as they would arrive. The same seed, the same set."""
    rng = random.Random(seed)
    events: list[tuple[Bug, Json]] = []
    for bug in bugs:
        for index in range(events_per_bug):
            # Every release appears for every bug, so release-to-release changes are tested.
            variation = Variation(random.Random(rng.getrandbits(64)),
                                  RELEASES[index % len(RELEASES)])
            events.append((bug, _envelope(variation, bug, bug.build(variation))))
    rng.shuffle(events)
    return events


def raw_events_frame(events: list[Json]) -> pl.DataFrame:
    """The raw-events frame of pipelines/README.md around these events."""
    count = len(events)
    return pl.DataFrame({
        "organization_id": pl.Series([1] * count, dtype=pl.UInt64),
        "project_id": pl.Series([1] * count, dtype=pl.UInt64),
        "event_id": [event.get("event_id", "") for event in events],
        "item_type": ["event"] * count,
        "received_at": pl.Series(
            [datetime.fromtimestamp(event.get("timestamp", 0), UTC) for event in events],
            dtype=pl.Datetime("ms", "UTC")),
        **{name: [""] * count for name in (
            "client_ip", "user_agent", "ua_browser", "ua_browser_version", "ua_os",
            "ua_os_version", "ua_device", "sdk_name", "sdk_version")},
        "payload": [orjson.dumps(event).decode() for event in events],
    })


def main(path: str) -> None:
    with open(path, "wb") as out:
        for bug, event in generate():
            out.write(orjson.dumps({"bug": bug.name, "strategy": bug.strategy, "event": event}))
            out.write(b"\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "grouping_set.jsonl")
