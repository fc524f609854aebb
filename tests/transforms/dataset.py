"""A seeded data set of processed events and transactions, and the right answers about it
computed here in plain Python, independently of ClickHouse and dbt."""

from __future__ import annotations

import random
import re
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

EVENT_COLUMNS = ["organization_id", "project_id", "event_id", "issue_id", "fingerprint_hash",
                 "timestamp", "received_at", "processed_at", "level", "platform", "title",
                 "release", "environment", "user_key", "browser_name", "os_name",
                 "device_family", "url", "tags.key", "tags.value"]
TRANSACTION_COLUMNS = ["organization_id", "project_id", "event_id", "transaction_name", "op",
                       "status", "start_timestamp", "timestamp", "duration_ms", "received_at",
                       "processed_at", "release", "environment", "user_key", "http_method",
                       "http_status_code", "url", "measurements.name", "measurements.value",
                       "spans.op", "spans.description", "spans.status", "spans.start_offset_ms",
                       "spans.duration_ms"]
# Google's thresholds: good up to the first figure, poor above the second.
THRESHOLDS = {"lcp": (2500, 4000), "inp": (200, 500), "fid": (100, 300), "cls": (0.1, 0.25),
              "ttfb": (800, 1800), "fcp": (1800, 3000)}
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
SYSTEMS = ["Windows", "macOS", "Linux", "iOS"]


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Event:
    organization_id: int
    project_id: int
    event_id: str
    issue_id: int
    timestamp: datetime
    release: str
    user_key: str
    browser: str
    os: str
    url: str
    plan: str
    processed_at: datetime

    def row(self) -> list[Any]:
        tags = {"level": "error", "release": self.release, "environment": "production",
                "browser": self.browser, "os": self.os, "device": "Desktop", "plan": self.plan}
        return [self.organization_id, self.project_id, self.event_id, self.issue_id,
                f"{self.issue_id:032x}", self.timestamp, self.timestamp, self.processed_at,
                "error", "javascript", f"TypeError in issue {self.issue_id}", self.release,
                "production", self.user_key, self.browser, self.os, "Desktop", self.url,
                list(tags), list(tags.values())]


@dataclass
class Transaction:
    organization_id: int
    project_id: int
    event_id: str
    name: str
    op: str
    timestamp: datetime
    release: str
    measurements: dict[str, float] = field(default_factory=dict)
    http_method: str = ""
    url: str = ""
    status: str = "ok"
    status_code: int = 0
    duration_ms: float = 100.0
    spans: list[tuple[str, str, str, float]] = field(default_factory=list)  # op, desc, status, ms
    processed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> list[Any]:
        return [self.organization_id, self.project_id, self.event_id, self.name, self.op,
                self.status, self.timestamp - timedelta(milliseconds=self.duration_ms),
                self.timestamp, self.duration_ms, self.timestamp, self.processed_at,
                self.release, "production", "", self.http_method, self.status_code, self.url,
                list(self.measurements), list(self.measurements.values()),
                [s[0] for s in self.spans], [s[1] for s in self.spans],
                [s[2] for s in self.spans], [5.0 for _ in self.spans],
                [s[3] for s in self.spans]]


@dataclass
class DataSet:
    """Rows as stored (a reprocessed event appears twice) and the events as they truly are."""

    events: list[Event] = field(default_factory=list)  # the truth: one per event id
    stored_events: list[Event] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)

    def insert(self, client: Client, events: list[Event] | None = None,
               transactions: list[Transaction] | None = None) -> None:
        rows = [e.row() for e in (self.stored_events if events is None else events)]
        if rows:
            client.insert("events", rows, column_names=EVENT_COLUMNS)
        txs = [t.row() for t in (self.transactions if transactions is None else transactions)]
        if txs:
            client.insert("transactions", txs, column_names=TRANSACTION_COLUMNS)

    # --- right answers ----------------------------------------------------------------------

    def issue_stats(self) -> dict[int, dict[str, Any]]:
        stats: dict[int, dict[str, Any]] = {}
        for e in self.events:
            s = stats.setdefault(e.issue_id, {"events": 0, "users": set(), "first": e.timestamp,
                                              "last": e.timestamp, "project": e.project_id,
                                              "organization": e.organization_id})
            s["events"] += 1
            if e.user_key:
                s["users"].add(e.user_key)
            s["first"], s["last"] = min(s["first"], e.timestamp), max(s["last"], e.timestamp)
        return stats

    def tag_values(self, issue_id: int, key: str) -> list[tuple[str, int, float]]:
        """(value, events, share) of a tag key on an issue, most frequent first, top ten."""
        values: Counter[str] = Counter()
        for e in self.events:
            if e.issue_id == issue_id:
                value = {"browser": e.browser, "os": e.os, "release": e.release, "plan": e.plan,
                         "url": e.url.split("?")[0]}[key]
                values[value] += 1
        total = sum(values.values())
        ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return [(value, count, count / total) for value, count in ranked]

    def web_vitals(self) -> dict[tuple[int, date, str, str, str], dict[str, Any]]:
        """(project, day, page, release, vital) -> p50/p75/p95 and the rating split."""
        samples: dict[tuple[int, date, str, str, str], list[float]] = defaultdict(list)
        for t in self.transactions:
            for vital, value in t.measurements.items():
                if vital in THRESHOLDS:
                    samples[(t.project_id, t.timestamp.date(), t.name, t.release, vital)].append(
                        value)
        answers = {}
        for key, values in samples.items():
            good_max, poor_above = THRESHOLDS[key[4]]
            answers[key] = {
                "samples": len(values),
                "p50": inclusive_quantile(values, 0.5),
                "p75": inclusive_quantile(values, 0.75),
                "p95": inclusive_quantile(values, 0.95),
                "good": sum(v <= good_max for v in values),
                "needs_improvement": sum(good_max < v <= poor_above for v in values),
                "poor": sum(v > poor_above for v in values),
            }
        return answers

    def api_latency(self) -> dict[tuple[int, date, str, str, str], dict[str, Any]]:
        """(project, day, side, method, endpoint) -> requests, error rate, p50/p95/p99."""
        calls: dict[tuple[int, date, str, str, str], list[tuple[float, bool]]] = defaultdict(list)
        for t in self.transactions:
            day = t.timestamp.date()
            if t.op == "http.server":
                calls[(t.project_id, day, "server", t.http_method, endpoint_of(t.url))].append(
                    (t.duration_ms, t.status != "ok" or t.status_code >= 500))
            for op, description, status, ms in t.spans:
                if op == "http.client":
                    method, url = description.split(" ", 1)
                    calls[(t.project_id, day, "client", method, endpoint_of(url))].append(
                        (ms, status != "ok"))
        answers = {}
        for key, found in calls.items():
            durations = [d for d, _ in found]
            answers[key] = {"requests": len(found),
                            "error_rate": sum(e for _, e in found) / len(found),
                            "p50": inclusive_quantile(durations, 0.5),
                            "p95": inclusive_quantile(durations, 0.95),
                            "p99": inclusive_quantile(durations, 0.99)}
        return answers


def inclusive_quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), via the standard library."""
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    whole = round(q * 100)
    return cuts[whole - 1]


def endpoint_of(url: str) -> str:
    """How a person would name the endpoint of a URL: path only, ids replaced."""
    path = re.sub(r"^[a-z]+://[^/]*", "", url.split("?")[0].split("#")[0])
    parts = []
    for part in path.split("/"):
        if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", part):
            part = "{uuid}"
        elif re.fullmatch(r"[0-9a-fA-F]{16,}", part):
            part = "{hash}"
        elif part.isdigit():
            part = "{id}"
        parts.append(part)
    return "/".join(parts)


def build(seed: int = 6, base: datetime | None = None, events_per_issue: int = 40) -> DataSet:
    """Three days of errors in two organizations (three projects), releases 1.0 -> 1.1 -> 1.2
    (issue 103 is seen in 1.0, absent from 1.1, back in 1.2: a regression), one event stored
    twice as the pipeline's reprocessing leaves it, page loads with Web Vitals and API calls."""
    rng = random.Random(seed)
    base = base or now_hour()
    data = DataSet()
    users = [f"user-{i}" for i in range(30)]
    releases = {"shop@1.0": 70, "shop@1.1": 46, "shop@1.2": 22}  # hours ago the release began
    projects = {101: (1, 1), 102: (1, 1), 103: (1, 1), 104: (1, 1), 105: (1, 2), 106: (1, 2),
                107: (2, 3)}
    # issue -> the releases it occurs in
    issue_releases = {101: ["shop@1.0", "shop@1.1", "shop@1.2"], 102: ["shop@1.1", "shop@1.2"],
                      103: ["shop@1.0", "shop@1.2"], 104: ["shop@1.2"],
                      105: ["shop@1.0", "shop@1.1"], 106: ["shop@1.2"], 107: ["shop@1.0"]}
    for issue_id, (org, project) in projects.items():
        count = events_per_issue + 7 * (issue_id - 101)
        for i in range(count):
            release = issue_releases[issue_id][i % len(issue_releases[issue_id])]
            start = releases[release]
            end = {"shop@1.0": 46, "shop@1.1": 22, "shop@1.2": 0}[release]
            hours_ago = rng.uniform(end, start)
            timestamp = (base - timedelta(hours=hours_ago)).replace(microsecond=0)
            user = "" if rng.random() < 0.1 else rng.choice(users[: 5 + issue_id % 20])
            data.events.append(Event(
                org, project, str(uuid.uuid4()), issue_id, timestamp, release, user,
                rng.choices(BROWSERS, weights=[6, 3, 2, 1])[0], rng.choice(SYSTEMS),
                f"https://shop.example.com/cart/{rng.randint(1, 3)}?session={rng.randint(1, 99)}",
                rng.choice(["free", "pro", "team"]),
                # Processed as they came in, a moment after they happened.
                processed_at=timestamp + timedelta(seconds=2)))
    data.stored_events = list(data.events)
    # The pipeline processed one event twice: an older version is still stored.
    again = data.events[5]
    data.stored_events.append(Event(**{**again.__dict__,
                                       "processed_at": again.processed_at - timedelta(seconds=1)}))
    data.transactions = transactions(rng, base, 1, 1, 240)
    data.transactions += transactions(rng, base, 2, 3, 30)
    return data


def transactions(rng: random.Random, base: datetime, org: int, project: int,
                 count: int) -> list[Transaction]:
    found = []
    for i in range(count):
        timestamp = (base - timedelta(hours=rng.uniform(0, 60))).replace(microsecond=0)
        release = "shop@1.2" if timestamp > base - timedelta(hours=22) else "shop@1.1"
        if i % 3 == 2:  # a backend request
            status_code = rng.choice([200, 200, 200, 201, 404, 500])
            found.append(Transaction(
                org, project, str(uuid.uuid4()), "/api/orders/{id}", "http.server", timestamp,
                release, http_method=rng.choice(["GET", "POST"]),
                url=f"https://api.example.com/api/orders/{rng.randint(1, 5000)}?expand=items",
                status="ok" if status_code < 500 else "internal_error",
                status_code=status_code, duration_ms=round(rng.uniform(5, 900), 3),
                processed_at=timestamp + timedelta(seconds=2)))
            continue
        page = rng.choice(["/", "/cart", "/checkout"])
        measurements = {"lcp": round(rng.uniform(800, 5200), 1),
                        "fcp": round(rng.uniform(300, 3600), 1),
                        "ttfb": round(rng.uniform(50, 2200), 1),
                        "cls": round(rng.uniform(0, 0.4), 4)}
        if i % 2:
            measurements["inp"] = round(rng.uniform(40, 700), 1)
        else:
            measurements["fid"] = round(rng.uniform(1, 400), 1)
        spans = [("http.client",
                  f"GET https://api.example.com/v1/items/{rng.randint(1, 900)}?currency=EUR",
                  rng.choice(["ok", "ok", "ok", "internal_error"]),
                  round(rng.uniform(20, 600), 3)),
                 ("resource.script", "https://shop.example.com/app.js", "ok", 30.0)]
        found.append(Transaction(org, project, str(uuid.uuid4()), page, "pageload", timestamp,
                                 release, measurements=measurements, spans=spans,
                                 duration_ms=measurements["lcp"],
                                 processed_at=timestamp + timedelta(seconds=2)))
    return found


def release_answers(data: DataSet) -> dict[tuple[int, str], dict[str, int]]:
    """(project, release) -> events, issues, new issues, regressed issues, by the marts'
    definitions: new = first seen in this release; regressed = seen in an earlier release,
    absent from the one just before, back in this one (releases ordered by first event)."""
    answers: dict[tuple[int, str], dict[str, int]] = {}
    for project in {e.project_id for e in data.events}:
        events = [e for e in data.events if e.project_id == project]
        first_event: dict[str, datetime] = {}
        for e in events:
            first_event[e.release] = min(first_event.get(e.release, e.timestamp), e.timestamp)
        order = sorted(first_event, key=lambda r: (first_event[r], r))
        seen_in = defaultdict(set)
        for e in events:
            seen_in[e.issue_id].add(order.index(e.release))
        for position, release in enumerate(order):
            issues = {i for i, found in seen_in.items() if position in found}
            answers[(project, release)] = {
                "events": sum(e.release == release for e in events),
                "users": len({e.user_key for e in events if e.release == release and e.user_key}),
                "issues": len(issues),
                "new_issues": sum(min(seen_in[i]) == position for i in issues),
                "regressed_issues": sum(min(seen_in[i]) < position and position - 1 not in
                                        seen_in[i] for i in issues),
            }
    return answers


def insert_feedback(client: Client, organization_id: int = 1, project_id: int = 1) -> None:
    client.insert("feedback", [[organization_id, project_id, uuid.uuid4(), None, 101,
                                datetime.now(UTC), datetime.now(UTC), "It broke at checkout"]],
                  column_names=["organization_id", "project_id", "feedback_id", "event_id",
                                "issue_id", "timestamp", "received_at", "message"])
