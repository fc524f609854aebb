// The page's part of tests/ingest/test_browser_sdk.py: Sentry.init from the query string, and
// one button per way an error reaches the SDK. Every message carries the run id, so the test
// finds exactly this run's events in raw_events.
import * as Sentry from "@sentry/browser";

const params = new URLSearchParams(window.location.search);
const dsn = params.get("dsn");
const run = params.get("run");

// What the SDK's own transport saw. A request blocked by CORS still reaches the server (and
// shows up in Playwright's network events) but makes fetch() reject here, so this is the only
// place a missing Access-Control-Allow-Origin becomes visible.
const transport = { pending: 0, results: [] };
window.e2eTransport = transport;

async function recordingFetch(url, init) {
  transport.pending += 1;
  try {
    const response = await fetch(url, init);
    transport.results.push({ url: String(url), status: response.status });
    return response;
  } catch (error) {
    transport.results.push({ url: String(url), error: String(error) });
    throw error;
  } finally {
    transport.pending -= 1;
  }
}

Sentry.init({
  dsn,
  release: `shop-web@${run}`,
  environment: "e2e",
  // The SDK's real fetch transport, handed a fetch that records outcomes (see above).
  transport: (options) => Sentry.makeFetchTransport(options, recordingFetch),
  // By default the SDK posts text/plain precisely to skip the CORS preflight; an app that sets
  // its own transport headers loses that, and the ingest must then answer the preflight.
  ...(params.get("preflight") === "1"
    ? { transportOptions: { headers: { "Content-Type": "application/x-sentry-envelope" } } }
    : {}),
});
Sentry.setTag("run", run);
Sentry.setUser({ id: "shopper-7" });

function uncaught() {
  // Thrown inside a timer callback, the way real app bugs escape: the SDK's wrapped setTimeout
  // reports it and rethrows it, so the browser sees it as uncaught too.
  setTimeout(() => {
    throw new TypeError(`cart is undefined (run ${run})`);
  }, 0);
}

function rejection() {
  // Nobody awaits or catches this promise: the browser fires unhandledrejection.
  Promise.reject(new RangeError(`quantity out of range (run ${run})`));
}

function captured() {
  try {
    throw new Error(`payment declined (run ${run})`);
  } catch (error) {
    Sentry.captureException(error);
  }
}

function message() {
  Sentry.captureMessage(`inventory low for SKU-9 (run ${run})`, "warning");
}

for (const [id, action] of Object.entries({ uncaught, rejection, captured, message })) {
  const button = document.getElementById(id);
  button.addEventListener("click", action);
  button.disabled = false;
}
// The test waits for this before clicking: module scripts run after load of their imports.
window.e2eReady = true;
