"""The issue stream as the management API and the dashboard read it: one SELECT on the dbt
marts (transforms/models/marts: fct_issue_hourly, fct_issue_daily, fct_issue_stats).

Kept apart from orchestration.transforms so a web process can run it without importing
Dagster or dbt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

IssueSort = Literal["date", "new", "freq", "user"]
# Sentry's stream sorts: last seen, first seen, events in the period, users in the period.
SORT_COLUMNS: dict[str, str] = {"date": "last_seen", "new": "first_seen", "freq": "events",
                                "user": "users"}


@dataclass(frozen=True)
class StreamPeriod:
    hours: int  # the statsPeriod: 24 for "24h", 336 for "14d"
    bucket_hours: int  # sparkline bucket: 1 for "24h", 24 for "14d"
    table: str  # the mart at that bucket's grain
    time_column: str

    @property
    def buckets(self) -> int:
        return self.hours // self.bucket_hours


# "24h": the current hour and the 23 before it; "14d": today (UTC) and the 13 days before.
PERIODS = {"24h": StreamPeriod(24, 1, "fct_issue_hourly", "hour"),
           "14d": StreamPeriod(14 * 24, 24, "fct_issue_daily", "day")}

ISSUE_STREAM_SQL = """
WITH
    toStartOfInterval({now:DateTime('UTC')}, toIntervalHour({bucket:UInt32}))
        - toIntervalHour(({buckets:UInt32} - 1) * {bucket:UInt32}) AS since,
    period AS (
        SELECT g.issue_id AS issue_id,
               sum(g.events) AS period_events,
               uniqExactMerge(g.users_state) AS period_users,
               groupArray((intDiv(toUInt32(dateDiff('hour', since,
                                                    toDateTime(g.{time:Identifier}))),
                                  {bucket:UInt32}),
                           g.events)) AS buckets
        FROM {marts:Identifier}.{grain:Identifier} AS g
        WHERE g.organization_id = {organization:UInt64} AND g.project_id = {project:UInt64}
          AND g.{time:Identifier} >= since
        GROUP BY g.issue_id
    )
SELECT p.issue_id AS issue_id,
       p.period_events AS events,
       p.period_users AS users,
       s.first_seen AS first_seen,
       s.last_seen AS last_seen,
       s.events AS lifetime_events,
       s.users AS lifetime_users,
       arrayMap(b -> arraySum(arrayMap(x -> if(x.1 = b, x.2, 0), p.buckets)),
                range({buckets:UInt32})) AS sparkline
FROM period AS p
INNER JOIN (
    SELECT issue_id, first_seen, last_seen, events, users
    FROM {marts:Identifier}.fct_issue_stats
    WHERE organization_id = {organization:UInt64} AND project_id = {project:UInt64}
) AS s ON s.issue_id = p.issue_id
ORDER BY {sort:Identifier} DESC, issue_id DESC
LIMIT {limit:UInt32}
"""


def issue_stream(
    client: Client,
    marts_database: str,
    organization_id: int,
    project_id: int,
    sort: IssueSort = "date",
    period: str = "24h",
    limit: int = 25,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """A project's issue stream from the marts: the top `limit` issues by `sort` among those
    with events in the period, with period and lifetime totals and the sparkline."""
    if sort not in SORT_COLUMNS:
        raise ValueError(f"sort must be one of {', '.join(SORT_COLUMNS)}, got {sort!r}")
    if period not in PERIODS:
        raise ValueError(f"statsPeriod must be one of {', '.join(PERIODS)}, got {period!r}")
    window = PERIODS[period]
    result = client.query(ISSUE_STREAM_SQL, parameters={
        "marts": marts_database, "organization": organization_id, "project": project_id,
        "grain": window.table, "time": window.time_column, "bucket": window.bucket_hours,
        "buckets": window.buckets,
        "sort": SORT_COLUMNS[sort], "limit": limit, "now": now or datetime.now(UTC),
    })
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
