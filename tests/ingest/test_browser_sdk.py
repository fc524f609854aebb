"""The official @sentry/browser, in headless Chromium, reports to a running ingest: an uncaught
error, an unhandled rejection, a captured exception and a message all land in raw_events.

Needs Debian's chromium and tests/ingest/browser/node_modules (scripts/setup-test-deps). The page
is served from its own port, so every envelope is a real cross-origin request to the ingest.
"""

from __future__ import annotations

import functools
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Response,
    sync_playwright,
)

from tests.stack import IngestStack

PAGE_DIR = Path(__file__).with_name("browser")
CHROMIUM = "/usr/bin/chromium"
# Keep Chromium to the test's own traffic: no background updates, sync or QUIC probes that
# could slow it down on a shared machine or reach for the (absent) internet.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# ua-parser's names for the browser in Chromium's User-Agent (new headless says HeadlessChrome).
CHROME_FAMILIES = {"Chrome", "Chromium", "HeadlessChrome"}


@pytest.fixture(scope="module", autouse=True)
def _browser_prerequisites() -> None:
    # scripts/test installs both; missing ones are a failure to say so, never a skip.
    assert shutil.which(CHROMIUM), "chromium is missing: run scripts/setup-test-deps"
    assert (PAGE_DIR / "node_modules").is_dir(), "npm packages missing: run scripts/setup-test-deps"


class _PageHandler(SimpleHTTPRequestHandler):
    # Module scripts are refused unless served as JavaScript; the SDK's dependency
    # @sentry/conventions ships .mjs files, which older mimetypes tables do not know.
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass  # hundreds of module fetches per page load would drown pytest's output


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """tests/ingest/browser/ over real HTTP on 127.0.0.1, on a port of its own."""
    handler = functools.partial(_PageHandler, directory=str(PAGE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="browser-page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class BrowserLog:
    """What the browser saw: ingest answers (from the network), errors and console output."""

    ingest_url: str
    responses: list[dict[str, Any]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # console errors

    def on_response(self, response: Response) -> None:
        if not response.url.startswith(self.ingest_url):
            return
        request = response.request
        self.responses.append({
            "method": request.method,
            "url": response.url,
            "status": response.status,
            "allow_origin": response.headers.get("access-control-allow-origin"),
            "content_type": request.headers.get("content-type"),
            "body": request.post_data or "",
        })

    def on_console(self, message: ConsoleMessage) -> None:
        # Errors only: that is where Chromium reports blocked CORS requests and failed loads.
        if message.type == "error":
            self.console.append(message.text)

    def on_page_error(self, error: Error) -> None:
        self.page_errors.append(error.message)

    def attach(self, page: Page) -> None:
        page.on("response", self.on_response)
        page.on("console", self.on_console)
        page.on("pageerror", self.on_page_error)

    def __str__(self) -> str:
        return f"page errors: {self.page_errors}\nconsole errors: {self.console}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's chromium (no Playwright browser download), once for the module."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            # A fresh profile: no cache, cookies or service workers from earlier runs.
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


def open_shop(
    browser: BrowserContext, page_origin: str, stack: IngestStack, run_id: str, **extra: str
) -> tuple[Page, BrowserLog]:
    """Opens the instrumented page and waits until Sentry.init has run."""
    page = browser.new_page()
    log = BrowserLog(stack.url)
    log.attach(page)
    query = urlencode({"dsn": stack.project.dsn, "run": run_id, **extra})
    page.goto(f"{page_origin}/page.html?{query}")
    try:
        page.wait_for_function("window.e2eReady === true", timeout=20_000)
    except Error as exc:
        page.close()
        raise AssertionError(f"the page did not start Sentry\n{log}") from exc
    return page, log


def landed_events(stack: IngestStack, run_id: str, expected: int) -> list[dict[str, Any]]:
    """This run's event rows (the run id is in every message and tag) as column dicts."""
    rows = stack.landed(
        "project_id = {p:UInt64} AND item_type = 'event' AND position(payload, {r:String}) > 0",
        {"p": stack.project.project_id, "r": run_id},
        expected=expected,
    )
    assert len(rows) == expected, rows  # each event exactly once
    columns = stack.columns()
    return [dict(zip(columns, row, strict=True)) for row in rows]


def settled_transport(page: Page, at_least: int) -> list[dict[str, Any]]:
    """The SDK transport's outcomes, once it has `at_least` and no request is in flight."""
    page.wait_for_function(
        "([n]) => window.e2eTransport.results.length >= n && window.e2eTransport.pending === 0",
        arg=[at_least], timeout=15_000,
    )
    results: list[dict[str, Any]] = page.evaluate("window.e2eTransport.results")
    assert results and all("error" not in r for r in results), results
    assert all(200 <= r["status"] < 300 for r in results), results
    return results


def test_browser_errors_land(
    ingest_stack: IngestStack, page_origin: str, browser: BrowserContext
) -> None:
    run_id = uuid.uuid4().hex
    project = ingest_stack.project
    page, log = open_shop(browser, page_origin, ingest_stack, run_id)
    try:
        for button in ("uncaught", "rejection", "captured", "message"):
            page.click(f"#{button}")
        landed = landed_events(ingest_stack, run_id, expected=4)
        # Events landed, so their requests were answered; the SDK's side of them (and the
        # session envelopes) settles just after.
        settled_transport(page, at_least=5)
    finally:
        page.close()

    events: dict[str, dict[str, Any]] = {}
    for row in landed:
        assert row["item_type"] == "event"
        assert row["sdk_name"].startswith("sentry.javascript.browser"), row["sdk_name"]
        assert row["client_ip"] == "127.0.0.1"
        assert row["ua_browser"] in CHROME_FAMILIES, (row["ua_browser"], row["user_agent"])
        assert row["organization_id"] == project.org_id
        event = orjson.loads(row["payload"])
        assert event["event_id"] == row["event_id"].hex
        assert event["release"] == f"shop-web@{run_id}"
        assert event["environment"] == "e2e"
        assert event["tags"]["run"] == run_id
        assert event["user"]["id"] == "shopper-7"
        assert event["request"]["url"].startswith(f"{page_origin}/page.html")
        exception = event.get("exception", {}).get("values", [{}])[-1]
        events[exception.get("type", "message")] = event

    assert set(events) == {"TypeError", "RangeError", "Error", "message"}, list(events)

    def exception(kind: str) -> dict[str, Any]:
        return events[kind]["exception"]["values"][-1]

    uncaught = exception("TypeError")
    assert uncaught["value"] == f"cart is undefined (run {run_id})"
    assert uncaught["mechanism"]["handled"] is False
    # Reported by the SDK's wrapped setTimeout (window.onerror would say global_handlers).
    assert uncaught["mechanism"]["type"] == "auto.browser.browserapierrors.setTimeout"

    rejection = exception("RangeError")
    assert rejection["value"] == f"quantity out of range (run {run_id})"
    assert rejection["mechanism"] == {
        "handled": False, "type": "auto.browser.global_handlers.onunhandledrejection",
    }

    captured = exception("Error")
    assert captured["value"] == f"payment declined (run {run_id})"
    assert captured["mechanism"]["handled"] is True
    # A real stack trace from the browser: the innermost frame is the page's function (which
    # V8 names after the element it ran on as a click listener: HTMLButtonElement.captured).
    frame = captured["stacktrace"]["frames"][-1]
    assert frame["filename"] == f"{page_origin}/page.js"
    assert frame["function"].rpartition(".")[2] == "captured", frame

    message = events["message"]
    assert message["message"] == f"inventory low for SKU-9 (run {run_id})"
    assert message["level"] == "warning"

    # Every envelope the SDK sent was accepted, session envelopes from the page load included,
    # and each answer allowed the page's origin, so the SDK could read it (CORS for real).
    assert log.responses, "no request reached the ingest"
    assert all(200 <= r["status"] < 300 for r in log.responses), log.responses
    assert all(r["allow_origin"] == page_origin for r in log.responses), log.responses
    assert any('"type":"session"' in r["body"] for r in log.responses), log.responses
    # Text/plain POSTs are "simple" requests: the SDK is built to avoid preflights.
    assert {r["method"] for r in log.responses} == {"POST"}
    # The only errors the page saw are the two it let escape on purpose.
    assert sorted(log.page_errors) == sorted([uncaught["value"], rejection["value"]]), log
    assert not log.console, log


def test_custom_transport_headers_pass_the_preflight(
    ingest_stack: IngestStack, page_origin: str, browser: BrowserContext
) -> None:
    """With its own Content-Type the SDK's POST is no longer "simple": Chromium asks the ingest
    first (OPTIONS), and only sends the envelope if the answer allows origin and header."""
    run_id = uuid.uuid4().hex
    page, log = open_shop(browser, page_origin, ingest_stack, run_id, preflight="1")
    try:
        page.click("#message")
        # The session envelope from the page load, then the message. A refused preflight
        # would show here as a rejected fetch(), its POST never sent.
        settled_transport(page, at_least=2)
        landed_events(ingest_stack, run_id, expected=1)
    finally:
        page.close()
    # The POSTs really carried the non-simple Content-Type, so Chromium did preflight them.
    types = {r["content_type"] for r in log.responses}
    assert types == {"application/x-sentry-envelope"}, log.responses
    assert all(r["allow_origin"] == page_origin for r in log.responses), log.responses
    assert not log.page_errors and not log.console, log
