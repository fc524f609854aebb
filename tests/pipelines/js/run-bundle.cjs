// Runs a minified bundle the way a browser would load it from a URL, calls the app's
// entry point and prints the error it throws as JSON with structured stack frames.
//
// usage: node run-bundle.cjs <bundle file> <url the bundle is served from>
//
// vm.runInThisContext with `filename: url` makes V8 report the URL in the stack, as a
// browser does for <script src=url>, so the frames carry a real minified line/column.
"use strict";

const fs = require("fs");
const vm = require("vm");

const [bundlePath, url] = process.argv.slice(2);
const code = fs.readFileSync(bundlePath, "utf8");

// V8's structured call sites: exact positions (1-based line and column) and the
// minified function names, without parsing the text of `error.stack`.
Error.stackTraceLimit = 50;
Error.prepareStackTrace = (error, callSites) =>
  callSites.map((site) => ({
    function: site.getFunctionName(),
    abs_path: site.getFileName(),
    lineno: site.getLineNumber(),
    colno: site.getColumnNumber(),
  }));

vm.runInThisContext(code, { filename: url });
try {
  globalThis.pulsetraceFixtureMain();
  console.error("the fixture app did not throw");
  process.exit(1);
} catch (error) {
  const frames = error.stack; // the array built by prepareStackTrace above
  process.stdout.write(
    JSON.stringify({ type: error.name, value: error.message, frames: frames }) + "\n",
  );
}
