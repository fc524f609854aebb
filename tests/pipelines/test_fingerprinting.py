"""Unit tests of pipelines.fingerprinting: each grouping rule, the normalizers, titles and
culprits, and the frame contract (columns, row order, other item types)."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from pipelines.fingerprinting import (
    Fingerprint,
    default_grouping,
    fingerprint_event,
    fingerprint_events,
    looks_random,
    normalize_filename,
    normalize_function,
    normalize_message,
    normalize_module,
)

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Event builders
# ---------------------------------------------------------------------------------------------


def py_frame(module: str, function: str, lineno: int = 10, context: str | None = None,
             in_app: bool | None = True) -> Json:
    frame: Json = {"module": module, "function": function, "lineno": lineno,
                   "filename": module.replace(".", "/") + ".py"}
    if context is not None:
        frame["context_line"] = context
    if in_app is not None:
        frame["in_app"] = in_app
    return frame


def js_frame(filename: str, function: str, lineno: int = 1, colno: int = 1,
             context: str | None = None) -> Json:
    frame: Json = {"filename": filename, "abs_path": filename, "function": function,
                   "lineno": lineno, "colno": colno}
    if context is not None:
        frame["context_line"] = context
    return frame


def error(exc_type: str, value: str, frames: list[Json] | None = None, **extra: Any) -> Json:
    exc: Json = {"type": exc_type, "value": value, **extra}
    if frames is not None:
        exc["stacktrace"] = {"frames": frames}
    return exc


def event(*exceptions: Json, platform: str = "python", **fields: Any) -> Json:
    payload: Json = {"platform": platform, "level": "error", **fields}
    if exceptions:
        payload["exception"] = {"values": list(exceptions)}
    return payload


def fp(payload: Json) -> Fingerprint:
    return fingerprint_event(payload)


APP = [py_frame("shop.views", "checkout", 20, "cart.pay()"),
       py_frame("shop.payments", "charge", 42, "total = order.subtotal + order.shipping")]


def app_frames(shift: int = 0) -> list[Json]:
    return [dict(frame, lineno=frame["lineno"] + shift) for frame in APP]


# ---------------------------------------------------------------------------------------------
# normalize_message
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [
    ("User 12345 not found", "User 987 not found"),
    ("Order 8f3a9b2c-1d4e-4f5a-9b8c-7d6e5f4a3b2c failed",
     "Order 00000000-0000-4000-8000-000000000000 failed"),
    ("Invalid email ana@example.com", "Invalid email zoë.99@mail.example.org"),
    ("Connection from 10.0.0.1 refused", "Connection from 192.168.255.254:5432 refused"),
    ("Connection from fe80::1%eth0 refused", "Connection from 2001:db8::8a2e:370:7334 refused"),
    ("Fetch https://api.example.com/v2/users/42?token=abc#x failed",
     "Fetch http://10.0.0.3:8080/other failed"),
    ("Expired at 2024-11-27T03:13:00.123Z", "Expired at 2025-01-02 23:59:59+01:00"),
    ("Expired on 2024-11-27", "Expired on 2023-02-28"),
    ("Expired on Thu, 27 Nov 2025 03:13:00 GMT", "Expired on Mon, 3 Feb 2025 10:00:00 +0100"),
    ("Expired on Thu Nov 27 2025 03:13:00 GMT+0000 (Coordinated Universal Time)",
     "Expired on Sun Mar 02 2025 18:01:02 GMT+0100 (Central European Standard Time)"),
    ("Renews Nov 27, 2025", "Renews Jan 3rd, 2026"),
    ("Slot 11/27/2024 at 12:30:45 PM", "Slot 1/2/2025 at 09:05:00 AM"),
    ("Blob d41d8cd98f00b204e9800998ecf8427e missing",
     "Blob 900150983cd24fb0d6963f7d28e17f72 missing"),
    ("Commit da39a3ee5e6b4b0d3255bfef95601890afd80709 missing",
     "Commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 missing"),
    ("Digest e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "Digest 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"),
    ("Object at 0x7f3a2b1c0d freed", "Object at 0x1 freed"),
    ("Build 3f9c1a2 broke", "Build 77e0d9c broke"),
    ("Session CgRLMpJDx9Qz7TkLw2 expired", "Session a8KfP0qZ3mLx9Wv2Rt expired"),
    ("Order ORD20241127 and order_12345 and req-778", "Order ORD20250101 and order_9 and req-1"),
    ("Took 1234ms (limit 500ms)", "Took 98ms (limit 250ms)"),
    ("Client v1.4.2 is too old", "Client v1.10.0 is too old"),
    ("Ratio 0.75 too high", "Ratio 12.5 too high"),
    ("Key 'sku-1234' missing", "Key 'sku-99' missing"),
    ('Cannot parse "2024-13-45"', 'Cannot parse "not a date at all"'),
    ("Field `user.email` invalid", "Field `order.total` invalid"),
    ("Ungültige Bestellung 12345 für „Kunde“", "Ungültige Bestellung 9 für „Kunde“"),
    ("ユーザー 12345 が見つかりません", "ユーザー 678 が見つかりません"),
    ("  spaced\tout \n text ", "spaced out text"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-_def rejected",
     "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI5In0.Zz9 rejected"),
    ("customer cus_AbCdEf123456 not found", "customer cus_NffrFeUfNV2Hib not found"),
    ("balance -5 too low", "balance 7 too low"),
    ("charge $1,234.56 failed", "charge $99.00 failed"),
    ("device 00:1A:2B:3C:4D:5E offline", "device 0a-1b-2c-3d-4e-5f offline"),
    ("session V1StGXR8_Z5jdHi6B-myT expired", "session Uakgb_J5m9g-0JDMbcJqLJ expired"),
    ("pod api-7d9f8c6b5-x2x9k crashed", "pod api-5c6d7e8f9-ab12c crashed"),
    ("Benutzer „Jörg Müller“ fehlt", "Benutzer „Zoë“ fehlt"),
    ("ユーザー「田中」がいません", "ユーザー「佐藤」がいません"),
])
def test_messages_differing_only_in_data_normalize_equal(first: str, second: str) -> None:
    assert normalize_message(first) == normalize_message(second)


@pytest.mark.parametrize(("first", "second"), [
    ("Payment declined for order 1", "Payment timed out for order 1"),
    ("'NoneType' object has no attribute 'id'", "'NoneType' object has no attribute 'name'"),
    ("Cannot read properties of null (reading 'style')",
     "Cannot read properties of null (reading 'addEventListener')"),
    ("Cannot read properties of null (reading 'x')",
     "Cannot read properties of undefined (reading 'x')"),
    ("No module named 'requests'", "No module named 'redis'"),
    ("Invalid email ana@example.com", "Invalid phone ana@example.com"),
    ("ユーザーが見つかりません", "注文が見つかりません"),
])
def test_different_wordings_stay_different(first: str, second: str) -> None:
    assert normalize_message(first) != normalize_message(second)


def test_placeholders_name_the_kind_of_data() -> None:
    text = ("User ana@example.com (id 42) from 10.0.0.1 at 2024-11-27T03:13:00Z opened "
            "https://shop.example/cart?id=9 with key 'ab-12' and uuid "
            "8f3a9b2c-1d4e-4f5a-9b8c-7d6e5f4a3b2c, ratio 0.5, sha "
            "d41d8cd98f00b204e9800998ecf8427e, at 0xdeadbeef")
    assert normalize_message(text) == (
        "User <email> (id <int>) from <ip> at <datetime> opened <url> with key '<str>' and "
        "uuid <uuid>, ratio <float>, sha <hash>, at <hex>")


def test_words_and_code_survive() -> None:
    for text in ("Can't connect to the database; don't retry",
                 "KeyError in cart.add_item while rendering CheckoutPage",
                 "Foo::Bar and std::vector failed",
                 "Käse ist alle — ユーザーが見つかりません"):
        assert normalize_message(text) == text
    assert normalize_message("'NoneType' object") == "'NoneType' object"
    assert normalize_message("") == ""


def test_random_ids_are_told_from_names() -> None:
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits
    ids = ["".join(rng.choice(alphabet) for _ in range(20)) for _ in range(2000)]
    with_digits = [token for token in ids if any(char.isdigit() for char in token)]
    missed = sum(not looks_random(token) for token in with_digits)
    assert missed / len(with_digits) < 0.005
    for name in ("getElementById", "addEventListener", "NullPointerException",
                 "XMLHttpRequest", "AbstractSingletonProxyFactoryBean", "internationalization"):
        assert not looks_random(name), name


# ---------------------------------------------------------------------------------------------
# Frame normalizers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [
    ("https://cdn.shop.example/static/js/main.3f9c1a2b.js?v=123#x", "static/js/main.js"),
    ("https://static2.shop.example/static/js/main.77e0d9c4.js", "static/js/main.js"),
    ("webpack://shop/./src/cart.js", "src/cart.js"),
    ("webpack:///./src/cart.js", "src/cart.js"),
    ("app:///src/cart.js", "src/cart.js"),
    ("~/src/cart.js", "src/cart.js"),
    ("/_next/static/Ot9k8SUyY0hBqyxUwUJsF/chunks/pages/index-3c9a2f1e4b5d6a7f.js",
     "_next/static/chunks/pages/index.js"),
    ("https://x.example/assets/index-CgRLMpJD.js", "assets/index.js"),
    ("https://x.example/assets/index-D-Ghq_1a.js", "assets/index.js"),
    ("https://x.example/assets/main-3F9C1A2B.js", "assets/main.js"),
    ("static/js/vendors~main.a1b2c3d4.chunk.js", "static/js/vendors~main.chunk.js"),
    ("static/js/123.a1b2c3d4.chunk.js", "static/js/<int>.chunk.js"),
    ("https://unpkg.com/react@18.2.0/umd/react.production.min.js",
     "react/umd/react.production.min.js"),
    ("/libs/jquery/3.6.0/jquery-3.6.0.min.js", "libs/jquery/jquery.min.js"),
    ("/var/www/app/releases/20241127123000/app/models/user.rb",
     "var/www/app/releases/app/models/user.rb"),
    ("C:\\app\\src\\cart.js", "C:/app/src/cart.js"),
    ("src/page-settings.js", "src/page-settings.js"),
    ("src/components/UserMenu.jsx", "src/components/UserMenu.jsx"),
    ("/home/deploy/app-3f9c1a2/src/cart.js", "home/deploy/app/src/cart.js"),  # per deploy
    ("/tmp/build_4f8c2a9b/server.js", "tmp/build/server.js"),
])
def test_normalize_filename(path: str, expected: str) -> None:
    assert normalize_filename(path) == expected


@pytest.mark.parametrize(("name", "platform", "expected"), [
    ("Object.<anonymous>", "node", ""),
    ("<anonymous>", "javascript", ""),
    ("?", "javascript", ""),
    ("async Cart.checkout", "node", "Cart.checkout"),
    ("Object.checkout [as co]", "javascript", "checkout"),
    ("new OrderForm", "javascript", "OrderForm"),
    ("Module.render", "javascript", "render"),
    ("onClick/<", "javascript", "onClick"),
    ("t", "javascript", ""),
    ("e.n", "javascript", ""),
    ("t.default", "javascript", "default"),
    ("HTMLButtonElement.onClick", "javascript", "HTMLButtonElement.onClick"),
    ("lambda$place$0", "java", "lambda$place"),
    ("access$000", "java", "access"),
    ("charge", "python", "charge"),
    ("<lambda>", "python", "<lambda>"),
    ("e", "python", "e"),  # short names are minified only in JavaScript
    ("e.on", "node", "on"),  # Node code is seldom minified: only one-letter parts go
    ("t.go", "node", "go"),
])
def test_normalize_function(name: str, platform: str, expected: str) -> None:
    assert normalize_function(name, platform) == expected


@pytest.mark.parametrize(("module", "expected"), [
    ("shop.payments", "shop.payments"),
    ("com.acme.OrderService$$EnhancerBySpringCGLIB$$8f3a2b1c",
     "com.acme.OrderService$$EnhancerBySpringCGLIB"),
    ("com.acme.OrderService$$SpringCGLIB$$0", "com.acme.OrderService$$SpringCGLIB"),
    ("com.acme.Foo$$Lambda$123/0x0000000800c1d2e8", "com.acme.Foo$$Lambda"),
    ("com.acme.Foo$HibernateProxy$AbC12xYz", "com.acme.Foo$HibernateProxy"),
    ("com.acme.Foo$Inner", "com.acme.Foo$Inner"),
    ("main.3f9c1a2b", "main"),
])
def test_normalize_module(module: str, expected: str) -> None:
    assert normalize_module(module) == expected


# ---------------------------------------------------------------------------------------------
# Custom fingerprints
# ---------------------------------------------------------------------------------------------


def test_custom_fingerprint_wins_over_everything() -> None:
    first = fp(event(error("TimeoutError", "a", app_frames()), fingerprint=["gateway"]))
    other = fp(event(error("KeyError", "b", [py_frame("x", "y")]), fingerprint=["gateway"]))
    assert first.strategy == other.strategy == "custom"
    assert first.fingerprint_hash == other.fingerprint_hash
    assert fp(event(fingerprint=["gateway", "eu"])).fingerprint_hash != first.fingerprint_hash
    # The title still says what happened.
    assert first.title == "TimeoutError: a"


def test_custom_fingerprint_with_default_extends_the_default() -> None:
    base = event(error("TypeError", "x", app_frames()))
    spaced = fp(dict(base, fingerprint=["{{ default }}", "db-replica"]))
    tight = fp(dict(base, fingerprint=["{{default}}", "db-replica"], release="2"))
    assert spaced.strategy == tight.strategy == "custom+default"
    assert spaced.fingerprint_hash == tight.fingerprint_hash
    assert spaced.fingerprint_hash != fp(base).fingerprint_hash
    other_bug = fp(event(error("ValueError", "x", app_frames()),
                         fingerprint=["{{ default }}", "db-replica"]))
    assert other_bug.fingerprint_hash != spaced.fingerprint_hash
    # Line shifts still do not matter inside {{ default }}.
    shifted = fp(event(error("TypeError", "x", app_frames(30)),
                       fingerprint=["{{ default }}", "db-replica"]))
    assert shifted.fingerprint_hash == spaced.fingerprint_hash


def test_default_alone_is_the_default_hash() -> None:
    base = event(error("TypeError", "x", app_frames()))
    result = fp(dict(base, fingerprint=["{{ default }}"]))
    assert result.strategy == "custom+default"
    assert result.fingerprint_hash == fp(base).fingerprint_hash


def test_fingerprint_variables_and_odd_values() -> None:
    first = fp(event(fingerprint=["slow", "{{ transaction }}"], transaction="/cart"))
    second = fp(event(fingerprint=["slow", "{{ transaction }}"], transaction="/checkout"))
    assert first.fingerprint_hash != second.fingerprint_hash
    assert fp(event(fingerprint=["a", 1])).fingerprint_hash == fp(
        event(fingerprint=["a", "1"])).fingerprint_hash
    # An empty or invalid fingerprint is no fingerprint.
    plain = fp(event(message="hello"))
    assert fp(event(message="hello", fingerprint=[])) == plain
    assert fp(event(message="hello", fingerprint="oops")) == plain


# ---------------------------------------------------------------------------------------------
# Stack traces
# ---------------------------------------------------------------------------------------------


def test_line_and_column_numbers_never_matter() -> None:
    first = fp(event(error("TypeError", "a", app_frames())))
    shifted = fp(event(error("TypeError", "b", app_frames(17)), release="shop@1.5.0"))
    assert first.strategy == "stacktrace"
    assert first.fingerprint_hash == shifted.fingerprint_hash


def test_type_function_module_and_source_line_each_matter() -> None:
    base = fp(event(error("TypeError", "x", app_frames()))).fingerprint_hash
    other_type = event(error("ValueError", "x", app_frames()))
    other_function = event(error("TypeError", "x", [APP[0], dict(APP[1], function="refund")]))
    other_module = event(error("TypeError", "x", [APP[0], dict(APP[1], module="shop.refunds")]))
    other_line = event(error("TypeError", "x", [APP[0], dict(APP[1], context_line="x = y")]))
    exception_module = event(error("TypeError", "x", app_frames(), module="shop.errors"))
    hashes = {fp(payload).fingerprint_hash for payload in (
        other_type, other_function, other_module, other_line, exception_module)}
    assert base not in hashes
    assert len(hashes) == 5


def test_only_in_app_frames_count() -> None:
    library_above = py_frame("django.core.handlers.base", "_get_response", 197, "x()", False)
    library_below = py_frame("decimal", "__add__", 1180, "return NotImplemented", False)
    plain = fp(event(error("TypeError", "x", app_frames())))
    wrapped = fp(event(error("TypeError", "x", [library_above, *app_frames(), library_below])))
    assert plain.fingerprint_hash == wrapped.fingerprint_hash
    assert wrapped.culprit == "charge in shop.payments"


def test_only_system_frames_use_all_frames_without_line_numbers() -> None:
    def system(lineno: int, function: str = "get_host") -> Json:
        return event(error("DisallowedHost", "Invalid host", [
            py_frame("django.middleware.common", "process_request", lineno, "h()", False),
            py_frame("django.http.request", function, lineno + 5, "raise DisallowedHost()",
                     False),
        ]), transaction="/login")

    first = fp(system(48))
    assert first.strategy == "stacktrace"
    assert first.fingerprint_hash == fp(system(60)).fingerprint_hash
    assert first.fingerprint_hash != fp(system(48, "get_port")).fingerprint_hash
    assert first.culprit == "/login"  # no in-app frame: the transaction


def test_in_app_unknown_uses_library_locations() -> None:
    def js(library: list[Json]) -> Json:
        app = js_frame("webpack://shop/./src/cart.js", "checkout", 17, 3,
                       "  const email = user.profile.email;")
        return event(error("TypeError", "x", [*library, app]), platform="javascript")

    react = js_frame("webpack://shop/./node_modules/react-dom/cjs/react-dom.js", "callCallback")
    extension = js_frame("chrome-extension://abcdef/content.js", "inject")
    vendor = js_frame("https://cdn.example/static/js/vendors~main.1a2b3c4d.chunk.js", "Xo")
    node = js_frame("node:internal/process/task_queues", "processTicksAndRejections")
    hashes = {fp(js(library)).fingerprint_hash
              for library in ([], [react], [extension, react], [vendor], [node])}
    assert len(hashes) == 1
    assert fp(js([react])).culprit == "checkout in src/cart.js"


def test_recursion_depth_does_not_matter() -> None:
    def recursion(depth: int) -> Json:
        walk = py_frame("shop.tree", "walk", 19, "walk(child)")
        return event(error("RecursionError", "maximum recursion depth exceeded",
                           [py_frame("shop.views", "category", 12, "walk(root)"),
                            *[walk] * depth]))

    assert len({fp(recursion(depth)).fingerprint_hash for depth in (1, 5, 200)}) == 1


def test_javascript_symbolicated_frames_across_builds() -> None:
    def build(prefix: str, function: str, colno: int) -> Json:
        return event(error("TypeError", "x", [
            js_frame(f"{prefix}src/cart.js", function, 17, colno, "  total += line.price;"),
        ]), platform="javascript")

    a = fp(build("webpack://shop/./", "checkout", 3))
    b = fp(build("webpack://shop/./", "Object.checkout", 9))
    c = fp(build("webpack://shop/./", "async checkout", 12))
    assert a.fingerprint_hash == b.fingerprint_hash == c.fingerprint_hash
    assert a.culprit == "checkout in src/cart.js"


def test_minified_frames_group_across_builds_by_bundle_and_message() -> None:
    def minified(build_hash: str, names: tuple[str, str], value: str) -> Json:
        url = f"https://cdn.shop.example/static/js/main.{build_hash}.js?v={build_hash[:3]}"
        return event(error("TypeError", value, [
            js_frame(url, names[0], 1, 1200), js_frame(url, names[1], 1, 88031),
        ]), platform="javascript")

    style = "Cannot read properties of null (reading 'style')"
    listener = "Cannot read properties of null (reading 'addEventListener')"
    first = fp(minified("3f9c1a2b", ("t", "e"), style))
    next_build = fp(minified("77e0d9c4", ("Xe", "n"), style))
    other_bug = fp(minified("3f9c1a2b", ("t", "e"), listener))
    assert first.strategy == "stacktrace"
    assert first.fingerprint_hash == next_build.fingerprint_hash
    assert first.fingerprint_hash != other_bug.fingerprint_hash


def test_minified_source_lines_are_ignored() -> None:
    def frame(context: str) -> Json:
        return event(error("TypeError", "x", [
            js_frame("https://x.example/app.js", "checkout", 1, 5, context)]),
            platform="javascript")

    minified_code = "!function(e){" + "var t=e.n;" * 40 + "}"
    rebuilt_code = "!function(n){" + "var r=n.e;" * 40 + "}"
    assert fp(frame(minified_code)) == fp(frame(rebuilt_code))


def test_java_generated_class_names_and_lambdas() -> None:
    def java(cglib: str, lambda_index: int, counter: int) -> Json:
        return event(error("NullPointerException", "x", [
            py_frame("java.lang.Thread", "run", 840, in_app=None),  # JDK: not in-app
            py_frame("org.springframework.web.servlet.FrameworkServlet", "service", 883,
                     in_app=False),
            py_frame(f"com.acme.OrderService$$EnhancerBySpringCGLIB$${cglib}", "place", 1),
            py_frame(f"com.acme.OrderService$$Lambda${counter}/0x0000000800{counter}", "apply"),
            py_frame("com.acme.OrderService", f"lambda$place${lambda_index}", 120),
        ], module="java.lang"), platform="java")

    first = fp(java("8f3a2b1c", 0, 123))
    assert first.fingerprint_hash == fp(java("1a2b3c4d", 2, 456)).fingerprint_hash
    assert first.culprit == "lambda$place$0 in com.acme.OrderService"


def test_exception_without_frames_borrows_the_thread_stack() -> None:
    frames = app_frames()
    with_thread = event(error("ANRException", "blocked", thread_id=7), threads={"values": [
        {"id": 1, "stacktrace": {"frames": [py_frame("x", "idle")]}},
        {"id": 7, "stacktrace": {"frames": frames}},
    ]})
    direct = event(error("ANRException", "blocked", frames))
    assert fp(with_thread).strategy == "stacktrace"
    assert fp(with_thread).fingerprint_hash == fp(direct).fingerprint_hash
    top_level = event(error("ANRException", "blocked"), stacktrace={"frames": frames})
    assert fp(top_level).fingerprint_hash == fp(direct).fingerprint_hash


# ---------------------------------------------------------------------------------------------
# Chained exceptions and exception groups
# ---------------------------------------------------------------------------------------------


def _chain(cause_type: str, main_frames: list[Json] | None = None) -> Json:
    call = py_frame("shop.payments", "charge", 130, "stripe.Charge.create(**params)")
    library = py_frame("stripe.api_requestor", "request", 400, "raise err", False)
    raise_site = py_frame("shop.payments", "charge", 133, "raise PaymentFailed() from exc")
    return event(
        error(cause_type, "provider said no", [call, library], module="stripe.error"),
        error("PaymentFailed", "Payment for order 1 failed",
              [raise_site] if main_frames is None else main_frames),
    )


def test_chained_exceptions_hash_the_whole_chain() -> None:
    declined = fp(_chain("CardError"))
    unreachable = fp(_chain("APIConnectionError"))
    assert declined.strategy == "stacktrace"
    assert declined.fingerprint_hash != unreachable.fingerprint_hash
    # The main (last, caught) exception names the issue.
    assert declined.title == "PaymentFailed: Payment for order 1 failed"
    assert declined.culprit == "charge in shop.payments"
    assert fp(_chain("CardError")).fingerprint_hash == declined.fingerprint_hash


def test_chain_whose_main_exception_has_no_frames_uses_the_others() -> None:
    result = fp(_chain("CardError", main_frames=[]))
    assert result.strategy == "stacktrace"
    assert result.title == "PaymentFailed: Payment for order 1 failed"
    assert result.culprit == "charge in shop.payments"  # from the cause, which has frames


def _group(leaves: list[Json]) -> Json:
    values = []
    for index, leaf in enumerate(leaves, start=1):
        values.append(dict(leaf, mechanism={"type": "chained", "exception_id": index,
                                            "parent_id": 0}))
    group = error("ExceptionGroup", f"unhandled errors in a TaskGroup ({len(leaves)} "
                  "sub-exceptions)", [py_frame("shop.jobs", "nightly", 30, "async with tg:")],
                  mechanism={"type": "generic", "is_exception_group": True, "exception_id": 0})
    return event(*values, group)


def test_exception_groups_hash_the_set_of_distinct_leaves() -> None:
    inventory = error("ValueError", "bad stock 3", [py_frame("shop.jobs", "sync_inventory", 61,
                                                             "raise ValueError(level)")])
    prices = error("KeyError", "'sku-1'", [py_frame("shop.jobs", "sync_prices", 84,
                                                    "price = feed[sku]")])
    one = fp(_group([inventory]))
    three = fp(_group([inventory, inventory, inventory]))
    assert one.fingerprint_hash == three.fingerprint_hash
    assert one.title == "ValueError: bad stock 3"  # all leaves alike: the leaf is the issue
    assert one.culprit == "sync_inventory in shop.jobs"
    # A leaf's own cause does not make it another leaf.
    cause = error("OSError", "disk full", [py_frame("shop.io", "write", 9, "f.write(data)")],
                  mechanism={"type": "chained", "exception_id": 9, "parent_id": 1})
    with_cause = fp(dict(_group([inventory]), exception={"values": [
        cause, *_group([inventory])["exception"]["values"]]}))
    assert with_cause.title == one.title
    assert with_cause.fingerprint_hash == one.fingerprint_hash
    mixed = fp(_group([inventory, prices, inventory]))
    assert mixed.fingerprint_hash == fp(_group([prices, inventory])).fingerprint_hash
    assert mixed.fingerprint_hash != one.fingerprint_hash
    assert mixed.title.startswith("ExceptionGroup: unhandled errors")


# ---------------------------------------------------------------------------------------------
# Exceptions without a stack trace, messages, fallback
# ---------------------------------------------------------------------------------------------


def test_no_stack_trace_groups_by_type_and_normalized_value() -> None:
    first = fp(event(error("ValueError", "Invalid email ana@example.com (user 42)")))
    second = fp(event(error("ValueError", "Invalid email bo@example.org (user 7)")))
    other_template = fp(event(error("ValueError", "Invalid phone '+1 555' (user 42)")))
    other_type = fp(event(error("TypeError", "Invalid email ana@example.com (user 42)")))
    assert first.strategy == "exception"
    assert first.fingerprint_hash == second.fingerprint_hash
    assert len({first.fingerprint_hash, other_template.fingerprint_hash,
                other_type.fingerprint_hash}) == 3
    assert first.title == "ValueError: Invalid email ana@example.com (user 42)"


def test_synthetic_exceptions_add_their_value() -> None:
    def rejection(value: str) -> Json:
        capture = js_frame("webpack://shop/./src/index.js", "main", 3, 1, "start();")
        return event(error("UnhandledRejection", value, [capture],
                           mechanism={"type": "onunhandledrejection", "synthetic": True}),
                     platform="javascript")

    timeout = fp(rejection("Non-Error promise rejection captured with value: Timeout 3000ms"))
    again = fp(rejection("Non-Error promise rejection captured with value: Timeout 9000ms"))
    other = fp(rejection("Non-Error promise rejection captured with keys: code, message"))
    assert timeout.fingerprint_hash == again.fingerprint_hash != other.fingerprint_hash


def test_messages_group_by_template_and_normalized_text() -> None:
    def log(order: int, email: str) -> Json:
        return event(logentry={"message": "Order %s failed for %s", "params": [order, email],
                               "formatted": f"Order {order} failed for {email}"},
                     logger="shop.orders")

    first = fp(log(1, "ana@example.com"))
    assert first.strategy == "message"
    assert first.fingerprint_hash == fp(log(2, "bo@example.org")).fingerprint_hash
    assert first.title == "Order 1 failed for ana@example.com"
    assert first.culprit == ""
    # f-strings: no template, the normalized text groups.
    full_of_ids = fp(event(message=(
        "Webhook 8f3a9b2c-1d4e-4f5a-9b8c-7d6e5f4a3b2c to https://h.example/x?sig=abc failed "
        "at 2024-11-27T03:13:00Z from 10.0.0.1 after 3 retries"), transaction="/hooks"))
    again = fp(event(message=(
        "Webhook 00000000-0000-4000-8000-000000000000 to https://other.example/ failed "
        "at 2025-01-01T00:00:00Z from 2001:db8::1 after 12 retries")))
    assert full_of_ids.fingerprint_hash == again.fingerprint_hash
    assert full_of_ids.culprit == "/hooks"


def test_message_title_formats_params_when_sdk_did_not() -> None:
    result = fp(event(logentry={"message": "User %s not found", "params": ["ana"]}))
    assert result.title == "User ana not found"
    broken = fp(event(logentry={"message": "User %s %s", "params": ["ana"]}))
    assert broken.title == "User %s %s"


def test_unicode_messages() -> None:
    first = fp(event(message="ユーザー 12345 が見つかりません 🚫"))
    second = fp(event(message="ユーザー 987 が見つかりません 🚫"))
    other = fp(event(message="注文 12345 が見つかりません 🚫"))
    assert first.fingerprint_hash == second.fingerprint_hash != other.fingerprint_hash
    assert first.title == "ユーザー 12345 が見つかりません 🚫"


def test_fallback_by_level_logger_and_platform() -> None:
    health = fp(event(logger="shop.health", level="warning", extra={"x": 1}))
    again = fp(event(logger="shop.health", level="warning", extra={"x": 2}))
    metrics = fp(event(logger="shop.metrics", level="warning"))
    assert health.strategy == "fallback"
    assert health.fingerprint_hash == again.fingerprint_hash != metrics.fingerprint_hash
    assert health.title == "<unlabeled event>"
    # Exceptions that say nothing fall through to the message.
    empty = fp(event(error("", ""), message="hello"))
    assert empty.strategy == "message"


def test_default_grouping_shows_its_components() -> None:
    strategy, components = default_grouping(event(error("TypeError", "x", app_frames())))
    assert strategy == "stacktrace"
    assert components == [["TypeError", [
        ["shop.views", "checkout", "cart.pay()"],
        ["shop.payments", "charge", "total = order.subtotal + order.shipping"],
    ]]]


# ---------------------------------------------------------------------------------------------
# Titles and culprits
# ---------------------------------------------------------------------------------------------


def test_titles_like_sentry() -> None:
    value = "Cannot read properties of undefined (reading 'x')"
    assert fp(event(error("TypeError", value, []))).title == f"TypeError: {value}"
    assert fp(event(error("ChunkLoadError", "Loading chunk 7 failed.\n(error: x)"))).title == (
        "ChunkLoadError: Loading chunk 7 failed.")
    assert fp(event(error("StopIteration", ""))).title == "StopIteration"
    long_title = fp(event(error("ValueError", "x" * 500))).title
    assert len(long_title) == 200 and long_title.endswith("…")


def test_culprits_like_sentry() -> None:
    python = fp(event(error("TypeError", "x", app_frames())))
    assert python.culprit == "charge in shop.payments"
    javascript = fp(event(error("TypeError", "x", [js_frame(
        "https://cdn.example/static/js/main.3f9c1a2b.js?v=1", "checkout", 1, 5)]),
        platform="javascript"))
    assert javascript.culprit == "checkout in static/js/main.js"
    no_frames = fp(event(error("TypeError", "x"), transaction="GET /cart"))
    assert no_frames.culprit == "GET /cart"
    assert fp(event(error("TypeError", "x"))).culprit == ""


# ---------------------------------------------------------------------------------------------
# Odd payloads
# ---------------------------------------------------------------------------------------------


def test_odd_shapes_do_not_fail() -> None:
    odd = [
        {"exception": [{"type": "TypeError", "value": "bare list"}]},
        {"exception": {"values": [None, {"type": "E", "stacktrace": None}]}},
        {"exception": {"values": [{"type": "E", "stacktrace": {"frames": ["x", None, 3]}}]}},
        {"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"function": {"nested": 1}, "module": ["list"], "in_app": "yes"}]}}]}},
        {"exception": "nonsense", "message": {"message": "as logentry"}},
        {"message": 42},
        {"fingerprint": [None, True, {"x": 1}], "message": "m"},
        {},
    ]
    for payload in odd:
        result = fp(payload)
        assert len(result.fingerprint_hash) == 32, payload
        assert result.title
    assert fp(odd[0]).title == "TypeError: bare list"
    assert fp(odd[4]).strategy == "message"


# ---------------------------------------------------------------------------------------------
# The frame
# ---------------------------------------------------------------------------------------------


def raw_frame(rows: list[tuple[str, str]]) -> pl.DataFrame:
    count = len(rows)
    return pl.DataFrame({
        "organization_id": pl.Series([1] * count, dtype=pl.UInt64),
        "project_id": pl.Series([2] * count, dtype=pl.UInt64),
        "event_id": [f"{index:032x}" for index in range(count)],
        "item_type": [item_type for item_type, _ in rows],
        "received_at": pl.Series([datetime(2024, 11, 27, tzinfo=UTC)] * count,
                                 dtype=pl.Datetime("ms", "UTC")),
        "client_ip": ["10.0.0.1"] * count,
        "payload": [payload for _, payload in rows],
    })


def test_fingerprint_events_adds_columns_and_keeps_rows() -> None:
    error_payload = event(error("TypeError", "x", app_frames()), transaction="/pay")
    rows = [
        ("event", orjson.dumps(error_payload).decode()),
        ("transaction", orjson.dumps({"type": "transaction", "transaction": "GET /cart"}).decode()),
        ("feedback", orjson.dumps({"contexts": {"feedback": {"message": "Broken!"}}}).decode()),
        ("user_report", orjson.dumps({"event_id": "a" * 32, "comments": "It crashed"}).decode()),
        ("event", orjson.dumps(event(message="hello")).decode()),
        ("event", "not json"),
        ("event", "[1, 2]"),
    ]
    frame = raw_frame(rows)
    out = fingerprint_events(frame)
    assert out.columns == [*frame.columns, "fingerprint_hash", "fingerprint_strategy", "title",
                           "culprit"]
    for name in ("fingerprint_hash", "fingerprint_strategy", "title", "culprit"):
        assert out.schema[name] == pl.Utf8
    assert out["event_id"].to_list() == frame["event_id"].to_list()
    assert out["fingerprint_strategy"].to_list() == [
        "stacktrace", "", "", "", "message", "fallback", "fallback"]
    assert out["title"].to_list() == [
        "TypeError: x", "GET /cart", "Broken!", "It crashed", "hello", "<invalid event>",
        "<invalid event>"]
    assert out["culprit"].to_list()[:2] == ["charge in shop.payments", ""]
    hashes = out["fingerprint_hash"].to_list()
    assert hashes[0] == fp(error_payload).fingerprint_hash
    assert hashes[1:4] == ["", "", ""]
    assert all(len(value) == 32 and value == value.lower() for value in hashes[4:])
    # Running it again (reprocessing) replaces the columns instead of failing.
    assert fingerprint_events(out).equals(out)


def test_fingerprint_events_on_an_empty_frame() -> None:
    out = fingerprint_events(raw_frame([]))
    assert out.height == 0
    assert out.schema["fingerprint_hash"] == pl.Utf8
