"""Management API latency: median and p95 per route on a filled project.

    .venv/bin/python bench/api.py [--issues 2000] [--events 300000] [--requests 40]

Starts PostgreSQL, Redis, the warehouse and the dashboard server (granian, as `pulsetrace up`
does) in a temporary data dir; creates an org with an admin, a project with `--issues` issues
and `--events` events over 14 days in ClickHouse `events` (skewed issue sizes, 20,000 users);
then times `--requests` sequential calls of each route over HTTP with a bearer token (one
warm-up call each, not counted). Figures only; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as `python bench/api.py`, this folder comes first on sys.path, where bench/ingest.py
# would shadow the `ingest` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import requests  # noqa: E402

from cli.stack import dashboard_service, start_service  # noqa: E402
from core import db  # noqa: E402
from core.embedded import postgres, redis, warehouse_service  # noqa: E402
from core.embedded.process import ManagedProcess, free_port  # noqa: E402
from core.models import Issue, Membership, Organization, Project, Role, User  # noqa: E402
from core.security import hash_password  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.warehouse import connect, migrate  # noqa: E402

PASSWORD = "benchmark password"

EVENTS_SQL = """
INSERT INTO events (organization_id, project_id, event_id, issue_id, fingerprint_hash,
    timestamp, received_at, level, platform, title, culprit, release, environment, user_key,
    `tags.key`, `tags.value`)
SELECT {org:UInt64}, {project:UInt64}, generateUUIDv4(number), issue, leftPad(hex(issue), 32, '0'),
    ts, ts, 'error', 'javascript', concat('TypeError: issue ', toString(issue)), 'app.js', rel,
    'production', user_key, ['level', 'release', 'browser'], ['error', rel, browser]
FROM (
    SELECT number,
        {first_issue:UInt64} + toUInt64(pow((cityHash64(number, 1) % 1000000) / 1e6, 3)
            * {issues:UInt64}) AS issue,
        now64(3) - toIntervalMillisecond(cityHash64(number, 2) % (14 * 86400 * 1000)) AS ts,
        concat('shop@1.', toString(intDiv(dateDiff('day', ts, now64(3)), 3))) AS rel,
        concat('id:user-', toString(cityHash64(number, 3) % 20000)) AS user_key,
        ['Chrome', 'Firefox', 'Safari', 'Edge'][1 + cityHash64(number, 4) % 4] AS browser
    FROM numbers({count:UInt64})
)
"""


def seed(settings: Settings, issues: int, events: int) -> tuple[str, str, int, int]:
    engine = db.make_engine(settings.database_url)
    now = datetime.now(UTC)
    with db.system_session(engine) as session, session.begin():
        org = Organization(slug="bench", name="Bench")
        session.add(org)
        session.flush()
        user = User(email="bench@bench.local", name="bench", password_hash=hash_password(PASSWORD))
        session.add(user)
        session.flush()
        session.add(Membership(organization_id=org.id, user_id=user.id, role=Role.admin))
        project = Project(organization_id=org.id, slug="web", name="Web", settings={})
        session.add(project)
        session.flush()
        rows = [Issue(organization_id=org.id, project_id=project.id,
                      fingerprint_hash=uuid.uuid4().hex, title=f"TypeError: issue {n}",
                      culprit="app.js", first_seen=now - timedelta(days=14, hours=-n % 300),
                      last_seen=now - timedelta(minutes=n % 5000))
                for n in range(issues)]
        session.add_all(rows)
        session.flush()
        first_issue = min(r.id for r in rows)
        org_id, project_id = org.id, project.id
    engine.dispose()
    client = connect(settings.clickhouse_url)
    client.command(EVENTS_SQL, parameters={
        "org": org_id, "project": project_id, "first_issue": first_issue,
        "issues": issues - 1, "count": events})
    event_id = client.command("SELECT replaceAll(toString(any(event_id)), '-', '') FROM events")
    client.close()
    return "bench", "web", first_issue, event_id  # type: ignore[return-value]


def timed(call: Callable[[], requests.Response], n: int) -> tuple[float, float]:
    answer = call()  # warm-up
    assert answer.status_code < 300, answer.text
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code < 300, answer.text
    samples.sort()
    return statistics.median(samples), samples[max(int(len(samples) * 0.95) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=2000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulsetrace-bench-api-") as tmp:
        settings = Settings(data_dir=Path(tmp), postgres_port=free_port(),
                            redis_port=free_port(), warehouse_port=free_port(),
                            dashboard_port=free_port())
        running: list[ManagedProcess] = []
        try:
            for spec in (postgres.service(settings), redis.service(settings),
                         warehouse_service.service(settings)):
                running.append(start_service(spec, settings))
            db.upgrade(settings.database_url)
            migrate(settings.clickhouse_url)
            started = time.perf_counter()
            org, project, issue_id, event_id = seed(settings, args.issues, args.events)
            print(f"seeded {args.issues} issues, {args.events} events in "
                  f"{time.perf_counter() - started:.1f} s")
            running.append(start_service(dashboard_service(settings), settings))
            base = f"http://{settings.host}:{settings.dashboard_port}/api/0"
            http = requests.Session()
            token = http.post(f"{base}/auth/login", json={"email": "bench@bench.local",
                                                         "password": PASSWORD}).json()
            auth = {"Authorization": f"Bearer {token['accessToken']}"}
            issues = f"{base}/projects/{org}/{project}/issues/"
            routes: dict[str, Callable[[], requests.Response]] = {
                "POST auth/login (argon2)": lambda: http.post(
                    f"{base}/auth/login", json={"email": "bench@bench.local",
                                                "password": PASSWORD}),
                "GET me": lambda: http.get(f"{base}/me", headers=auth),
                "GET issues sort=date 14d": lambda: http.get(issues, headers=auth),
                "GET issues sort=freq 14d": lambda: http.get(
                    issues, headers=auth, params={"sort": "freq"}),
                "GET issues sort=user 24h": lambda: http.get(
                    issues, headers=auth, params={"sort": "user", "statsPeriod": "24h"}),
                "GET issues query=text": lambda: http.get(
                    issues, headers=auth, params={"query": "issue 12"}),
                "GET issue": lambda: http.get(f"{base}/issues/{issue_id}/", headers=auth),
                "PUT issue (resolve)": lambda: http.put(
                    f"{base}/issues/{issue_id}/", headers=auth, json={"status": "resolved"}),
                "GET issue events": lambda: http.get(f"{base}/issues/{issue_id}/events/",
                                                     headers=auth),
                "GET issue tags": lambda: http.get(f"{base}/issues/{issue_id}/tags/",
                                                   headers=auth),
                "GET event": lambda: http.get(
                    f"{base}/projects/{org}/{project}/events/{event_id}/", headers=auth),
                "GET openapi.json": lambda: http.get(f"{base}/openapi.json"),
            }
            events_of_issue = connect(settings.clickhouse_url).command(
                "SELECT count() FROM events WHERE issue_id = {i:UInt64}",
                parameters={"i": issue_id})
            print(f"issue {issue_id} has {events_of_issue} events; {args.requests} requests each")
            print(f"{'route':<28} {'median ms':>10} {'p95 ms':>8}")
            for name, call in routes.items():
                median, p95 = timed(call, args.requests)
                print(f"{name:<28} {median:>10.1f} {p95:>8.1f}")
        finally:
            for process in reversed(running):
                process.stop()


if __name__ == "__main__":
    main()
