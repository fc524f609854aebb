"""Ingest throughput, latency and landing: how fast events are accepted, and how soon they land.

Goals (issue 4), on this 2-core machine: at least 3,000 events/s with one envelope per request,
at least 30,000 events/s with native batches of 100, p99 under 25 ms, zero loss.

What it does: starts its own stack (`pulsetrace up`) in a temporary data dir on free ports, with
the rate limit raised out of the way, bootstraps one project per run, and for each phase
  (a) one gzip Sentry envelope per request to /api/<id>/envelope/ (an event shaped like
      sentry-sdk's: exception with stack frames, breadcrumbs, user, tags, contexts; ~2 KB JSON)
  (b) one gzip JSON array of 100 such events per request to /api/<id>/events/
runs a short warm-up, then RUNS timed runs, and prints accepted events/s, p50/p95/p99 request
latency, non-2xx answers, how long after the load stopped every accepted event was in
`raw_events` (counted with FINAL, per run project, then checked by the run's marker tag), the
loss, and where the CPU went.

After each of the product's runs it runs a probe for as long: bench/ingest_reference.py, the
path of the ARCHITECTURE.md probe the goals were set beside (Flask, gunzip, parse, key check,
one Redis round trip; 3,200-3,800 requests/s then), under the ingest's own granian command line,
with the single phase's envelopes and connections. This shared machine's speed swings by 2-6x
between days, so the probe's figure over its old one says how much faster the machine ran
around that run: each run's rate is divided by that speed-up and its p99 multiplied by it (a
closed loop's latency grows as the machine slows, by Little's law), which gives what the
product would show on the goal-setting machine, and that is judged against the goals too (on
the probe's low figure then, the conservative end). A pure-Python timing at the start and the
end says how fast the machine was running as well.

How load is generated: `wrk` (Debian's, `apt-get install -y wrk`), one thread, a fixed number of
keep-alive connections (closed loop: each connection sends its next request when the previous
answer arrives), from 127.0.0.1, driven by bench/ingest_load.lua. Every body is built and
gzip-compressed here beforehand, written to a file, and formatted into a complete request by
wrk's Lua before the clock starts, so the load generator costs a table lookup per request and
each request carries events with ids never sent before. Body counts are sized from the warm-up's
rate with headroom; a run that would run out of bodies is repeated with more. Latencies are
wrk's (time from writing the request to reading the whole answer). The load shares the 2 cores
with the server, as does anything else running on the machine: the CPU split printed per run
shows how much went to each service, to wrk, and to other processes on the host.

What runs: by default an ingest node, `pulsetrace up --services ingest,worker` (the ingest, the
landing worker, and the PostgreSQL, Redis and warehouse they use), as a scaled deployment runs
the write path apart from processing; `--services all` measures the whole stack on the same
2 cores, where processing the events as they land competes with accepting them.

Usage: .venv/bin/python bench/ingest.py [--runs 3] [--duration 15] [--warmup 3]
       [--phases single,batch] [--single-connections 16] [--batch-connections 2]
       [--batch-size 100] [--no-reference] [--keep] [--services ingest,worker|all]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from core.embedded.process import ManagedProcess, ServiceSpec, free_port, start_healthy
from core.redis import redis_client
from core.warehouse import connect

PULSETRACE = str(Path(sys.executable).parent / "pulsetrace")
LUA = Path(__file__).with_name("ingest_load.lua")
SDK_VERSION = "2.75.0"
USER_AGENT = f"sentry.python/{SDK_VERSION}"
GZIP_LEVEL = 6  # zlib's default, what `gzip` and most HTTP clients use

GOAL_SINGLE_EPS = 3_000
GOAL_BATCH_EPS = 30_000
GOAL_P99_MS = 25.0
# What the ARCHITECTURE.md probe (bench/ingest_reference.py) reached, in requests/s of one
# envelope, on the machine the goals were set on, with the single phase's load.
PROBE_THEN_RPS = (3_200, 3_800)
LANDING_TIMEOUT_S = 180.0


# --- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    ingest_url: str = ""
    clickhouse_url: str = ""
    redis_url: str = ""
    service_pids: dict[str, int] = field(default_factory=dict)


def start_stack(data_dir: Path, services: str = "all") -> Stack:
    env = dict(os.environ)
    env.pop("PULSETRACE_SERVICES", None)
    if services != "all":
        env["PULSETRACE_SERVICES"] = services
    for name in ("POSTGRES_PORT", "REDIS_PORT", "WAREHOUSE_PORT", "INGEST_PORT",
                 "DASHBOARD_PORT", "DAGSTER_PORT"):
        env[name] = str(free_port())
    env["INGEST_RATE_LIMIT_PER_MINUTE"] = "100000000"  # measure throughput, not the limiter
    log = data_dir.parent / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [PULSETRACE, "up", "--data-dir", str(data_dir)], env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = Stack(data_dir, env, process)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            tail = "\n".join(log.read_text().splitlines()[-40:])
            raise SystemExit(f"`pulsetrace up` exited early; the end of {log}:\n{tail}")
        status = subprocess.run(
            [PULSETRACE, "status", "--data-dir", str(data_dir)], env=env, capture_output=True
        )
        if status.returncode == 0:
            break
        if time.monotonic() > deadline:
            stop_stack(stack)
            raise SystemExit(f"the stack did not become healthy:\n{status.stdout.decode()}")
        time.sleep(0.3)
    info = json.loads((data_dir / "run" / "stack.json").read_text())
    stack.ingest_url = f"http://127.0.0.1:{env['INGEST_PORT']}"
    stack.clickhouse_url = info["environment"]["CLICKHOUSE_URL"]
    stack.redis_url = info["environment"]["REDIS_URL"]
    stack.service_pids = {name: int(s["pid"]) for name, s in info["services"].items()}
    stack.service_pids["up"] = process.pid
    return stack


def stop_stack(stack: Stack) -> None:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        try:
            stack.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait()


@dataclass(frozen=True)
class Project:
    project_id: int
    public_key: str
    marker: str  # the value of the `bench_run` tag on every event of the run

    @property
    def auth(self) -> str:
        return (f"Sentry sentry_key={self.public_key}, sentry_version=7, "
                f"sentry_client={USER_AGENT}")


def bootstrap_project(stack: Stack, name: str) -> Project:
    out = subprocess.run(
        [PULSETRACE, "bootstrap", "--data-dir", str(stack.data_dir), "--org", "Bench",
         "--project", name, "--email", "bench@example.com", "--password", "bench-password-1",
         "--json"],
        env=stack.env, capture_output=True, check=True,
    )
    info = json.loads(out.stdout)
    return Project(int(info["project_id"]), info["public_key"], f"{name}-{uuid.uuid4().hex[:8]}")


# --- request bodies --------------------------------------------------------------------------

_SLOTS = ("@@EID@@", "@@TS@@", "@@TID@@", "@@SID@@", "@@SEQ@@")


def _frame(filename: str, function: str, module: str, lineno: int, context: str | None = None,
           variables: dict[str, str] | None = None) -> dict[str, Any]:
    """A frame as sentry-sdk sends it: source context and local variables for in-app code."""
    frame: dict[str, Any] = {
        "filename": filename, "abs_path": f"/srv/app/{filename}", "function": function,
        "module": module, "lineno": lineno, "in_app": context is not None,
    }
    if context is not None:
        frame["context_line"] = context
        frame["vars"] = variables or {}
    if function == "add":  # the innermost frame: source lines around it too
        frame["pre_context"] = [f"def {function}(self, *args):", "    state = self.load()"]
        frame["post_context"] = ["    return result"]
    return frame


def event_template(marker: str) -> dict[str, Any]:
    """An error event as sentry-sdk (Python, Flask integration) sends it; slots filled per event."""
    frames = [
        _frame("flask/app.py", "dispatch_request", "flask.app", 902),
        _frame("shop/views.py", "add_to_cart", "shop.views", 58,
               "    line = cart.add(sku, quantity)", {"sku": "'sku-@@SEQ@@'", "quantity": "2"}),
        _frame("shop/cart.py", "add", "shop.cart", 131,
               "    price = self.prices[sku]", {"sku": "'sku-@@SEQ@@'", "self": "<Cart 7f3a>"}),
    ]
    return {
        "level": "error",
        "exception": {"values": [{
            "mechanism": {"type": "flask", "handled": False},
            "module": None, "type": "KeyError", "value": "'sku-@@SEQ@@'",
            "stacktrace": {"frames": frames},
        }]},
        "event_id": "@@EID@@",
        "timestamp": "@@TS@@",
        "contexts": {
            "trace": {"trace_id": "@@TID@@", "span_id": "@@SID@@", "parent_span_id": None,
                      "op": "http.server", "status": "internal_error"},
            "runtime": {"name": "CPython", "version": "3.11.2"},
        },
        "user": {"id": "@@SEQ@@", "email": "customer@@SEQ@@@example.com",
                 "ip_address": "{{auto}}"},
        "transaction": "/cart/add",
        "transaction_info": {"source": "route"},
        "tags": {"bench_run": marker, "region": "eu-west-1"},
        "breadcrumbs": {"values": [
            {"type": "http", "category": "httplib", "level": "info",
             "timestamp": "@@TS@@",
             "data": {"url": "http://prices.internal/v1/sku", "method": "GET",
                      "status_code": 404}},
            {"type": "log", "category": "shop.cart", "level": "warning",
             "timestamp": "@@TS@@", "message": "price cache miss for sku-@@SEQ@@"},
        ]},
        "release": "shop@1.4.2",
        "environment": "production",
        "server_name": "web-3",
        "sdk": {"name": "sentry.python.flask", "version": SDK_VERSION,
                "packages": [{"name": "pypi:sentry-sdk", "version": SDK_VERSION}],
                "integrations": ["flask", "logging", "stdlib", "threading"]},
        "platform": "python",
    }


class Template:
    """JSON with slots, split once so each copy is a join of fixed parts and slot values."""

    def __init__(self, text: bytes) -> None:
        pattern = re.compile("|".join(re.escape(s) for s in _SLOTS).encode())
        self.parts: list[bytes] = []
        self.slots: list[int] = []
        pos = 0
        for match in pattern.finditer(text):
            self.parts.append(text[pos:match.start()])
            self.slots.append(_SLOTS.index(match.group().decode()))
            pos = match.end()
        self.parts.append(text[pos:])

    def fill(self, values: tuple[bytes, ...]) -> bytes:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return b"".join(out)


class EventFactory:
    """Distinct events for one project: new event, trace and span ids every time."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.event = Template(orjson.dumps(event_template(project.marker)))
        self.envelope_header = Template(orjson.dumps({
            "event_id": "@@EID@@", "sent_at": "@@TS@@",
            "trace": {"trace_id": "@@TID@@", "environment": "production",
                      "release": "shop@1.4.2", "public_key": project.public_key,
                      "transaction": "/cart/add", "sample_rate": "1.0", "sampled": "false"},
        }))
        self.seq = 0
        self._second = 0
        self._now = b""

    def _values(self) -> tuple[bytes, ...]:
        self.seq += 1
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        ids = os.urandom(32).hex().encode()  # random event and trace ids, 32 hex digits each
        return (ids[:32], self._now, ids[32:], ids[32:48], str(self.seq).encode())

    def event_json(self) -> bytes:
        return self.event.fill(self._values())

    def envelope(self) -> tuple[bytes, int]:
        """One envelope as sentry-sdk frames it, and the size of its event JSON."""
        values = self._values()
        payload = self.event.fill(values)
        item = b'{"type":"event","content_type":"application/json","length":%d}' % len(payload)
        return b"\n".join((self.envelope_header.fill(values), item, payload)) + b"\n", len(
            payload
        )


def gzip_bytes(data: bytes) -> bytes:
    return zlib.compress(data, GZIP_LEVEL, 16 + zlib.MAX_WBITS)


@dataclass(frozen=True)
class Bodies:
    blob: Path
    lengths: Path
    count: int
    events: int
    raw_bytes: int  # uncompressed, all bodies
    wire_bytes: int  # gzip, all bodies
    event_json_bytes: int  # one event's JSON, on average


def write_bodies(directory: Path, name: str, bodies: Iterator[tuple[bytes, int, int]]) -> Bodies:
    """bodies yields (uncompressed body, events in it, event JSON bytes in it)."""
    blob, lengths = directory / f"{name}.bin", directory / f"{name}.len"
    count = events = raw = wire = json_bytes = 0
    with blob.open("wb") as data, lengths.open("w") as sizes:
        for body, n, payload_bytes in bodies:
            packed = gzip_bytes(body)
            data.write(packed)
            sizes.write(f"{len(packed)}\n")
            count += 1
            events += n
            raw += len(body)
            wire += len(packed)
            json_bytes += payload_bytes
    return Bodies(blob, lengths, count, events, raw, wire, json_bytes // max(events, 1))


def envelope_bodies(factory: EventFactory, count: int) -> Iterator[tuple[bytes, int, int]]:
    for _ in range(count):
        body, payload_bytes = factory.envelope()
        yield body, 1, payload_bytes


def batch_bodies(
    factory: EventFactory, count: int, size: int
) -> Iterator[tuple[bytes, int, int]]:
    for _ in range(count):
        events = [factory.event_json() for _ in range(size)]
        yield b"[" + b",".join(events) + b"]", size, sum(len(e) for e in events)


# --- CPU accounting --------------------------------------------------------------------------


def _tree_cpu(pid: int) -> dict[int, float]:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    out = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[proc.pid] = times.user + times.system
    return out


def host_busy_seconds() -> tuple[float, float]:
    """CPU seconds all processes on the host ran, and seconds the hypervisor took (steal)."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", 0.0)


@dataclass
class CpuSnapshot:
    per_service: dict[str, dict[int, float]]
    host_busy: float
    steal: float
    own: float

    @classmethod
    def take(cls, stack: Stack) -> CpuSnapshot:
        per_service: dict[str, dict[int, float]] = {}
        seen: set[int] = set()
        # Services first, `up` (their parent) last, so each pid counts once.
        for name, pid in sorted(stack.service_pids.items(), key=lambda kv: kv[0] == "up"):
            tree = {p: t for p, t in _tree_cpu(pid).items() if p not in seen}
            seen.update(tree)
            per_service[name] = tree
        own = resource.getrusage(resource.RUSAGE_SELF)
        return cls(per_service, *host_busy_seconds(), own.ru_utime + own.ru_stime)

    def minus(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds per service, and `host` (all processes), `steal` and `bench` (this)."""
        used = {}
        for name, tree in self.per_service.items():
            old = before.per_service.get(name, {})
            used[name] = sum(max(0.0, t - old.get(pid, 0.0)) for pid, t in tree.items())
        used["host"] = self.host_busy - before.host_busy
        used["steal"] = self.steal - before.steal
        used["bench"] = self.own - before.own
        return used


# --- one load run ----------------------------------------------------------------------------


@dataclass
class WrkResult:
    figures: dict[str, float]
    wrk_cpu: float  # CPU seconds wrk used while the clock ran
    stopped_at: float  # time.monotonic() when wrk had finished
    cpu: dict[str, float]  # CPU seconds while the clock ran: see CpuSnapshot.minus
    raw_output: str

    def __getitem__(self, key: str) -> float:
        return self.figures[key]


def run_wrk(stack: Stack, url: str, path: str, auth: str, content_type: str, bodies: Bodies,
            connections: int, duration: int, log: Path, cycle: bool = False) -> WrkResult:
    argv = [
        # Line-buffered, so "Running ..." (printed once the bodies are loaded) arrives on time.
        "stdbuf", "-oL", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "--latency",
        "-s", str(LUA), url, "--", path, str(bodies.blob), str(bodies.lengths), content_type,
        auth, USER_AGENT, "1", *(["cycle"] if cycle else []),
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    lines = []
    wrk_ready_cpu = 0.0
    before: CpuSnapshot | None = None
    after: CpuSnapshot | None = None
    for raw in process.stdout:
        line = raw.decode(errors="replace")
        lines.append(line)
        if line.startswith("Running ") and before is None:
            # wrk prints this once its Lua init (loading and formatting bodies) is done.
            times = psutil.Process(process.pid).cpu_times()
            wrk_ready_cpu = times.user + times.system
            before = CpuSnapshot.take(stack)
        if line.startswith("PT_RESULT"):
            after = CpuSnapshot.take(stack)
    _, status, usage = os.wait4(process.pid, 0)
    stopped_at = time.monotonic()
    process.returncode = os.waitstatus_to_exitcode(status)
    output = "".join(lines)
    log.write_text(output)
    result = next((ln for ln in lines if ln.startswith("PT_RESULT")), None)
    if process.returncode != 0 or result is None or before is None or after is None:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{output}")
    figures = {k: float(v) for k, v in (kv.split("=") for kv in result.split()[1:])}
    wrk_cpu = usage.ru_utime + usage.ru_stime - wrk_ready_cpu
    return WrkResult(figures, wrk_cpu, stopped_at, after.minus(before), output)


def scrape(stack: Stack) -> dict[str, float]:
    """The ingest's Prometheus counters that matter here, summed over label values."""
    with urllib.request.urlopen(f"{stack.ingest_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"(pulsetrace_ingest_events_\w+_total)(\{[^}]*\})?\s+(\S+)", line)
        if match:
            name = match.group(1).removeprefix("pulsetrace_ingest_events_")
            name = name.removesuffix("_total") + (match.group(2) or "")
            out[name] = out.get(name, 0.0) + float(match.group(3))
    return out


def accepted_total(counters: dict[str, float]) -> float:
    return sum(v for k, v in counters.items() if k.startswith("accepted"))


@dataclass
class Landing:
    landed: int
    seconds: float | None  # from the end of the load until all had landed; None: timed out
    with_marker: int = 0


def wait_landed(stack: Stack, project: Project, expected: int, stopped_at: float) -> Landing:
    """Polls raw_events (FINAL: one row per event id) until the run's project has `expected`."""
    client = connect(stack.clickhouse_url)
    query = f"SELECT count() FROM raw_events FINAL WHERE project_id = {project.project_id}"
    landed = 0
    seconds: float | None = None
    deadline = stopped_at + LANDING_TIMEOUT_S
    while time.monotonic() < deadline:
        landed = int(client.command(query))
        if landed >= expected:
            seconds = time.monotonic() - stopped_at
            break
        time.sleep(0.05)
    client.close()
    return Landing(landed, seconds)


def count_marked(stack: Stack, project: Project) -> int:
    """The run's events in raw_events, found by the `bench_run` tag in their payload."""
    client = connect(stack.clickhouse_url)
    marker = project.marker.replace("'", "")
    count = int(client.command(
        f"SELECT count() FROM raw_events FINAL WHERE project_id = {project.project_id} "
        f"AND JSONExtractString(payload, 'tags', 'bench_run') = '{marker}'"
    ))
    client.close()
    return count


@dataclass
class RunResult:
    label: str
    events_per_request: int
    connections: int
    wrk: WrkResult
    client_accepted: int
    server_accepted: int
    rejected: dict[str, float]
    landing: Landing
    bodies: Bodies

    @property
    def duration(self) -> float:
        return self.wrk["duration_us"] / 1e6

    @property
    def events_per_second(self) -> float:
        return self.client_accepted / self.duration

    @property
    def requests_per_second(self) -> float:
        return self.wrk["requests"] / self.duration

    def ms(self, key: str) -> float:
        return self.wrk[key] / 1000

    @property
    def non_2xx(self) -> int:
        return int(self.wrk["err_status"])

    @property
    def socket_errors(self) -> int:
        return int(sum(self.wrk[k] for k in ("err_connect", "err_read", "err_write",
                                             "err_timeout")))

    @property
    def loss(self) -> int:
        """Accepted (by the server's own count, which includes answers still in flight when
        the load stopped) and not in raw_events; and never less than the 200s the client saw
        minus what landed."""
        return max(self.server_accepted - self.landing.landed,
                   self.client_accepted - self.landing.landed, 0)


@dataclass
class Phase:
    name: str
    endpoint: str
    content_type: str
    events_per_request: int
    connections: int
    goal_eps: float
    make_bodies: Callable[[EventFactory, int], Iterator[tuple[bytes, int, int]]]
    guess_requests_per_s: float  # sizes the warm-up's bodies


def one_run(stack: Stack, phase: Phase, project: Project, bodies: Bodies, duration: int,
            work: Path, label: str) -> RunResult:
    before = scrape(stack)
    wrk = run_wrk(stack, stack.ingest_url, f"/api/{project.project_id}/{phase.endpoint}/",
                  project.auth, phase.content_type, bodies, phase.connections, duration,
                  work / f"{label}.wrk.txt")
    ok_requests = int(wrk["requests"] - wrk["err_status"])
    client_accepted = ok_requests * phase.events_per_request
    landing = wait_landed(stack, project, client_accepted, wrk.stopped_at)
    # The server's own count also has the requests still in flight when wrk stopped reading;
    # they are answered within about one request latency.
    time.sleep(max(0.0, wrk.stopped_at + 1.0 - time.monotonic()))
    after = scrape(stack)
    server_accepted = int(accepted_total(after) - accepted_total(before))
    rejected = {k: after[k] - before.get(k, 0.0) for k in after
                if not k.startswith("accepted") and after[k] - before.get(k, 0.0) > 0}
    if landing.seconds is not None and server_accepted > landing.landed:
        landing = wait_landed(stack, project, server_accepted, wrk.stopped_at)
    landing.with_marker = count_marked(stack, project)
    return RunResult(label, phase.events_per_request, phase.connections, wrk, client_accepted,
                     server_accepted, rejected, landing, bodies)


def make_bodies(phase: Phase, project: Project, requests: int, work: Path, name: str) -> Bodies:
    factory = EventFactory(project)
    return write_bodies(work, name, phase.make_bodies(factory, requests))


def run_phase(stack: Stack, phase: Phase, projects: list[Project], runs: int, duration: int,
              warmup: int, work: Path, probe: Probe | None) -> tuple[list[RunResult],
                                                                    list[WrkResult]]:
    """The product's runs, each followed by a run of the probe when there is one: pairs taken
    minutes apart would each see the shared machine at another speed."""
    started = time.monotonic()
    warm_project, run_projects = projects[0], projects[1:]
    warm_requests = int(phase.guess_requests_per_s * warmup) + 2 * phase.connections
    warm_bodies = make_bodies(phase, warm_project, warm_requests, work, f"{phase.name}-warm")
    print(f"  bodies: {warm_bodies.raw_bytes / warm_bodies.count:,.0f} B per request "
          f"uncompressed, {warm_bodies.wire_bytes / warm_bodies.count:,.0f} B gzip; event JSON "
          f"{warm_bodies.event_json_bytes:,} B", flush=True)
    warm = one_run(stack, phase, warm_project, warm_bodies, warmup, work, f"{phase.name}-warm")
    print(f"  warm-up ({warmup} s, not counted): {warm.events_per_second:,.0f} events/s, "
          f"landed {warm.landing.landed:,}/{warm.server_accepted:,}", flush=True)
    cleanup(warm_bodies)
    if probe:
        probe.run(warmup, f"{phase.name}-probe-warm")
    # Size each run's bodies from the warm-up, with headroom for a faster run.
    rate = max(warm.requests_per_second, phase.guess_requests_per_s / 4)
    per_run = int(rate * 1.6 * duration) + 4 * phase.connections
    results: list[RunResult] = []
    probe_results: list[WrkResult] = []
    for i, project in enumerate(run_projects[:runs], start=1):
        label = f"{phase.name}-{i}"
        for attempt in range(3):
            bodies = make_bodies(phase, project, per_run, work, label)
            result = one_run(stack, phase, project, bodies, duration, work, label)
            cleanup(bodies)
            if not result.wrk["exhausted"]:
                break
            # Ran out of bodies before the clock did: a fresh project, twice the bodies.
            per_run *= 2
            project = bootstrap_project(stack, f"{label}-retry{attempt}")
            print(f"  run {i}: ran out of bodies; repeating with {per_run:,}", flush=True)
        results.append(result)
        print_run(i, result)
        if probe:
            probe_results.append(probe.run(duration, f"{label}-probe"))
            print_probe_run(probe, probe_results[-1])
    print(f"  (phase took {time.monotonic() - started:.0f} s)", flush=True)
    return results, probe_results


def cleanup(bodies: Bodies) -> None:
    bodies.blob.unlink(missing_ok=True)
    bodies.lengths.unlink(missing_ok=True)


# --- the reference: the goals' probe, at the same moment ---------------------------------


def calibrate() -> float:
    """Microseconds for a fixed piece of pure Python: how fast this machine runs right now."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


def start_probe_redis(log_dir: Path) -> tuple[ManagedProcess, str]:
    """A Redis of the probe's own, without persistence: on the stack's (append-only file),
    the probe's uncompressed events made Redis rewrite its file every few seconds, and the
    forks stalled the probe for up to ~0.5 s (the product queues them compressed)."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    binary = shutil.which("redis-server", path=str(Path(sys.executable).parent)) or \
        "redis-server"
    return start_healthy(ServiceSpec(
        name="probe redis",
        argv=[binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no"],
        health=lambda: bool(redis_client(url).ping()),
        log_file=log_dir / "probe-redis.log", startup_timeout=30,
    )), url


def _answers(url: str) -> bool:
    with contextlib.suppress(urllib.error.HTTPError):  # it answers (GET / is a 404)
        urllib.request.urlopen(url, timeout=2).close()
    return True  # anything else (refused) raises: not yet


def start_reference(stack: Stack, public_key: str, redis_url: str) -> tuple[ManagedProcess, str]:
    """bench/ingest_reference.py (the probe) under the ingest's own granian command line."""
    argv = psutil.Process(stack.service_pids["ingest"]).cmdline()
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("ingest.wsgi:app")] = "ingest_reference:app"
    bench_dir = Path(__file__).resolve().parent
    url = f"http://127.0.0.1:{port}"
    return start_healthy(ServiceSpec(
        name="probe", argv=argv, health=lambda: _answers(url),
        env={**stack.env, "REDIS_URL": redis_url, "BENCH_REFERENCE_KEYS": public_key,
             "PYTHONPATH": str(bench_dir)},
        cwd=bench_dir, log_file=stack.data_dir.parent / "reference.log",
    )), url


class Probe:
    """The probe's app, started once and loaded between the product's runs with the single
    phase's envelopes and connections, whatever the phase: a gauge of the machine's speed."""

    def __init__(self, stack: Stack, phase: Phase, project: Project, work: Path) -> None:
        self.stack, self.work = stack, work
        self.redis, redis_url = start_probe_redis(stack.data_dir.parent)
        try:
            self.app, url = start_reference(stack, project.public_key, redis_url)
        except BaseException:
            self.redis.stop()
            raise
        for name, process in (("probe redis", self.redis), ("probe", self.app)):
            stack.service_pids[name] = int(process.pid or 0)
        # Repeated bodies are fine here: the probe does not drop repeated event ids.
        self.bodies = make_bodies(phase, project, 5_000, work, "probe")
        self.args = (stack, url, f"/api/{project.project_id}/{phase.endpoint}/", project.auth,
                     phase.content_type, self.bodies, phase.connections)

    def run(self, duration: int, label: str) -> WrkResult:
        return run_wrk(*self.args, duration, self.work / f"{label}.wrk.txt", cycle=True)

    def requests_per_second(self, result: WrkResult) -> float:
        return (result["requests"] - result["err_status"]) / (result["duration_us"] / 1e6)

    def close(self) -> None:
        cleanup(self.bodies)
        for name, process in (("probe", self.app), ("probe redis", self.redis)):
            del self.stack.service_pids[name]
            process.stop()


# --- output ----------------------------------------------------------------------------------


def cpu_line(wrk: WrkResult) -> str:
    """Where the CPU went while the clock ran, in cores (this machine has os.cpu_count())."""
    seconds = wrk["duration_us"] / 1e6
    cpu = dict(wrk.cpu)
    host, steal = cpu.pop("host"), cpu.pop("steal")
    ours = sum(cpu.values()) + wrk.wrk_cpu
    names = ["ingest", "redis", "worker", "warehouse", "postgres"]
    names += [name for name in cpu if name not in (*names, "up", "bench")]
    parts = [f"{name} {cpu.get(name, 0.0) / seconds:.2f}" for name in names]
    parts.append(f"wrk {wrk.wrk_cpu / seconds:.2f}")
    parts.append(f"bench+supervisor {(cpu.get('up', 0.0) + cpu.get('bench', 0.0)) / seconds:.2f}")
    parts.append(f"other processes on the host {max(0.0, host - ours) / seconds:.2f}")
    parts.append(f"steal {steal / seconds:.2f}")
    return f"cpu (cores of {os.cpu_count()}): " + ", ".join(parts)


def print_run(number: int, r: RunResult) -> None:
    landed = (f"all landed {r.landing.seconds:.2f} s after the load stopped"
              if r.landing.seconds is not None
              else f"NOT all landed within {LANDING_TIMEOUT_S:.0f} s")
    rejected = (", rejected " + ", ".join(f"{k} {v:.0f}" for k, v in r.rejected.items())
                if r.rejected else "")
    print(
        f"  run {number}: {r.events_per_second:,.0f} events/s ({r.requests_per_second:,.0f} "
        f"req/s over {r.duration:.1f} s); latency p50 {r.ms('p50_us'):.1f} ms, "
        f"p95 {r.ms('p95_us'):.1f} ms, p99 {r.ms('p99_us'):.1f} ms, max {r.ms('max_us'):.0f} ms"
    )
    print(
        f"         accepted {r.client_accepted:,} (server counted {r.server_accepted:,}), "
        f"landed {r.landing.landed:,} (with the run's tag {r.landing.with_marker:,}), "
        f"loss {r.loss}; non-2xx {r.non_2xx}, socket errors {r.socket_errors}{rejected}; "
        f"{landed}"
    )
    print(f"         {cpu_line(r.wrk)}", flush=True)


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def summarize(phase: Phase, results: list[RunResult]) -> list[str]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    def spread(values: list[float], fmt: str) -> str:
        return f"{format(min(values), fmt)}–{format(max(values), fmt)}"

    eps = [r.events_per_second for r in results]
    p50 = [r.ms("p50_us") for r in results]
    p95 = [r.ms("p95_us") for r in results]
    p99 = [r.ms("p99_us") for r in results]
    landing = [r.landing.seconds for r in results if r.landing.seconds is not None]
    # Accepted and landed: the rate the stack holds, once the landing has caught up.
    held = [r.server_accepted / (r.duration + r.landing.seconds) for r in results
            if r.landing.seconds is not None]
    loss = sum(r.loss for r in results)
    non_2xx = sum(r.non_2xx for r in results)
    errors = sum(r.socket_errors for r in results)
    unit = "per request" if phase.events_per_request == 1 else \
        f"per request of {phase.events_per_request} events"
    lines = [
        f"{phase.name}: median of {len(results)} runs, {phase.connections} connections",
        f"  accepted      {med(eps):>9,.0f} events/s   (runs {spread(eps, ',.0f')})   "
        f"goal >= {phase.goal_eps:,.0f}: {verdict(med(eps) >= phase.goal_eps)}",
        f"  latency p50   {med(p50):>9.1f} ms         (runs {spread(p50, '.1f')}) {unit}",
        f"  latency p95   {med(p95):>9.1f} ms         (runs {spread(p95, '.1f')})",
        f"  latency p99   {med(p99):>9.1f} ms         (runs {spread(p99, '.1f')})   "
        f"goal < {GOAL_P99_MS:.0f} ms: {verdict(med(p99) < GOAL_P99_MS)}",
    ]
    if landing:
        lines.append(
            f"  all landed    {med(landing):>9.2f} s after the last answer "
            f"(runs {spread(landing, '.2f')})"
            + ("" if len(landing) == len(results) else
               f"; {len(results) - len(landing)} runs did NOT land within the timeout")
        )
        lines.append(f"  landed        {med(held):>9,.0f} events/s   (runs {spread(held, ',.0f')}) "
                     f"accepted over the run and the time until all landed")
    else:
        lines.append(f"  landing       NO run landed completely within {LANDING_TIMEOUT_S:.0f} s")
    lines.append(
        f"  loss          {loss:>9,} events over all runs   goal 0: {verdict(loss == 0)}; "
        f"non-2xx {non_2xx}, socket errors {errors}"
    )
    return lines


def print_probe_run(probe: Probe, wrk: WrkResult) -> None:
    print(f"         probe: {probe.requests_per_second(wrk):,.0f} req/s; latency p50 "
          f"{wrk['p50_us'] / 1000:.1f} ms, p95 {wrk['p95_us'] / 1000:.1f} ms, p99 "
          f"{wrk['p99_us'] / 1000:.1f} ms; non-2xx {wrk['err_status']:.0f}", flush=True)
    print(f"         probe {cpu_line(wrk)}", flush=True)


def summarize_probe(phase: Phase, probe: Probe, results: list[RunResult],
                    probe_results: list[WrkResult]) -> list[str]:
    """What the product's runs make on the machine the goals were set on, each scaled by how
    much faster than then the probe ran right after it."""
    low, high = PROBE_THEN_RPS
    # Judged on the probe's low figure then: the largest slowdown, so the lowest rate and
    # the longest latency. A closed loop's latency grows as the machine slows (Little's law).
    probe_rps = [probe.requests_per_second(wrk) for wrk in probe_results]
    speedups = [rps / low for rps in probe_rps]
    rates = [r.events_per_second / x for r, x in zip(results, speedups, strict=True)]
    p99s = [r.ms("p99_us") * x for r, x in zip(results, speedups, strict=True)]
    speedup, rate, p99 = (statistics.median(v) for v in (speedups, rates, p99s))
    runs = ", ".join(f"{rps:,.0f}" for rps in probe_rps)
    return [
        f"  probe         {statistics.median(probe_rps):>9,.0f} req/s      (runs {runs}): "
        f"the machine ran {speedup:.2f}x as fast as when the goals were set (probe then "
        f"{low:,}-{high:,} req/s; {speedup * low / high:.2f}x on the high figure)",
        f"  then          {rate:>9,.0f} events/s   goal >= {phase.goal_eps:,.0f}: "
        f"{verdict(rate >= phase.goal_eps)}; p99 ~{p99:.1f} ms, goal < {GOAL_P99_MS:.0f} ms: "
        f"{verdict(p99 < GOAL_P99_MS)} (each run scaled by its probe run)",
    ]


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per phase")
    parser.add_argument("--duration", type=int, default=15, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per phase")
    parser.add_argument("--phases", default="single,batch")
    parser.add_argument("--single-connections", type=int, default=16)
    # One batch in flight per ingest worker. With 4 the ingest accepted ~30% more than the
    # landing kept up with (66,000 events/s accepted, 50,000 landed over the run and its
    # catch-up, all landed ~4.5 s after a 15 s run), so it measured a burst, and its p99 was
    # queueing; 2 accepted 56,000 and landed 54,000, all ~0.5 s after the run.
    parser.add_argument("--batch-connections", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    parser.add_argument("--services", default="ingest,worker",
                        help="what `pulsetrace up` runs: an ingest node (default) or all")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the probe runs (bench/ingest_reference.py)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")

    phases = {
        "single": Phase("single", "envelope", "application/x-sentry-envelope", 1,
                        args.single_connections, GOAL_SINGLE_EPS, envelope_bodies, 8_000),
        "batch": Phase("batch", "events", "application/json", args.batch_size,
                       args.batch_connections, GOAL_BATCH_EPS,
                       lambda f, n: batch_bodies(f, n, args.batch_size),
                       80_000 / args.batch_size),
    }
    chosen = [phases[name] for name in args.phases.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="pulsetrace-bench-ingest-"))
    work = tmp / "work"
    work.mkdir()
    try:
        stack = start_stack(tmp / "data", args.services)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary: list[str] = []
    probe: Probe | None = None
    try:
        print(f"PulseTrace ingest bench: stack in {tmp} running {args.services} (services), "
              f"ingest {stack.ingest_url} (granian, 2 workers); load: wrk 1 thread from "
              f"127.0.0.1, closed loop, "
              f"{args.duration} s per run after a {args.warmup} s warm-up; "
              f"{os.cpu_count()} cores", flush=True)
        print(f"machine speed now: sum(range(1000)) takes {calibrate():.1f} µs in CPython "
              f"(lower is faster); load average {os.getloadavg()[0]:.1f}", flush=True)
        projects = {
            phase.name: [bootstrap_project(stack, f"{phase.name}-{i}")
                         for i in range(args.runs + 1)]
            for phase in chosen
        }
        probe = None if args.no_reference else \
            Probe(stack, phases["single"], bootstrap_project(stack, "probe"), work)
        for phase in chosen:
            print(f"\n({'ab'[list(phases).index(phase.name)]}) {phase.name}: "
                  f"POST /api/<id>/{phase.endpoint}/, {phase.events_per_request} event(s) per "
                  f"gzip request, {phase.connections} keep-alive connections", flush=True)
            results, probe_results = run_phase(stack, phase, projects[phase.name], args.runs,
                                               args.duration, args.warmup, work, probe)
            summary += summarize(phase, results)
            if probe:
                summary += summarize_probe(phase, probe, results, probe_results)
        print("\nSummary (goals: >= 3,000 events/s single, >= 30,000 events/s batched, "
              "p99 < 25 ms, zero loss)")
        print("\n".join(summary))
        print(f"machine speed at the end: sum(range(1000)) takes {calibrate():.1f} µs; "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        if probe:
            probe.close()
        stop_stack(stack)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
