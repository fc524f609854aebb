"""One micro-batch: landed raw events in, processed events and issues out.

Reads `raw_events` between two landing times, runs the pipelines (symbolicate → scrub →
fingerprint → rows), then in ONE PostgreSQL transaction upserts the issues, writes the
processed rows to ClickHouse and moves the cursor. ClickHouse writes are idempotent
(ReplacingMergeTree on the event id), and the issue counters and the cursor commit together,
so a batch that fails anywhere is simply run again: exactly once.

An event that fails on its own (a poison event: a bug meeting a shape nobody foresaw) is set
aside (`pipelines.batch.process_isolating`) and recorded in `dead_letter_events`, so that it
does not block every project's events; reprocessing a range that holds it tries it again.
Storage failing (the source-map store) is never an event's fault: the window is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
from clickhouse_connect.driver.client import Client
from sqlalchemy import (
    BigInteger,
    Engine,
    String,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from core.blobs import BlobStore
from core.db import system_session
from core.models import (
    Issue,
    IssueStatus,
    IssueSubstatus,
    PipelineCursor,
    Project,
    Release,
    ReleaseProject,
    ReprocessingPreviousIssue,
)
from core.settings import get_settings
from core.warehouse import insert_rows
from ingest.queue import SEEN_BUCKET_SECONDS
from orchestration.source_maps import StoredSourceMaps
from pipelines.batch import ProcessedRows, no_failures, process_isolating
from pipelines.issues import (
    count_regrouped,
    plan_issue_changes,
    summarize_batch,
    with_issue_ids,
)
from pipelines.scrubbing import ScrubConfig
from pipelines.symbolication import SourceMapCache

if TYPE_CHECKING:
    from orchestration.parallel import PipelinePool

log = logging.getLogger("pulsetrace.processing")

CURSOR_NAME = "raw_events"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Text as the pipeline reads it: ingest lands valid UTF-8 only, but a row landed some other
# way may hold any bytes, and Polars takes them into a string column unchecked (a stage then
# panics on the event, or its row fails the insert). Invalid bytes read as U+FFFD instead.
_TEXT_COLUMNS = ("client_ip", "user_agent", "ua_browser", "ua_browser_version", "ua_os",
                 "ua_os_version", "ua_device", "sdk_name", "sdk_version", "payload")
RAW_COLUMNS = (
    "organization_id, project_id, replaceAll(toString(event_id), '-', '') AS event_id, "
    "item_type, received_at, "
    + ", ".join(f"toValidUTF8({name}) AS {name}" for name in _TEXT_COLUMNS)
    + ", landing_retry, landed_at, clock_drift_ms"
)


@dataclass(frozen=True)
class Window:
    """Raw events with after < landed_at <= upto."""

    after: datetime
    upto: datetime


@dataclass
class BatchResult:
    raw: int = 0
    events: int = 0
    transactions: int = 0
    feedback: int = 0
    new_issues: int = 0
    regressions: int = 0
    dead_lettered: int = 0  # events set aside, recorded in dead_letter_events
    retried: int = 0  # set aside before, processed now (reprocessing)

    def add(self, other: BatchResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- the cursor -----------------------------------------------------------------------------


def read_cursor(engine: Engine, name: str = CURSOR_NAME) -> datetime:
    with system_session(engine) as session:
        position = session.scalar(select(PipelineCursor.position).where(
            PipelineCursor.name == name))
    return datetime.fromisoformat(position) if position else EPOCH


def _claim_cursor(session: Session, name: str) -> datetime:
    """Lock the cursor row for this transaction and return its position, so two runs of the
    same window (a retry, a second runner) process it once: the second one sees it done."""
    session.execute(insert(PipelineCursor).values(name=name, position=EPOCH.isoformat())
                    .on_conflict_do_nothing())
    position = session.scalar(select(PipelineCursor.position)
                              .where(PipelineCursor.name == name).with_for_update())
    return datetime.fromisoformat(position) if position else EPOCH


def _save_cursor(session: Session, upto: datetime, name: str = CURSOR_NAME) -> None:
    statement = insert(PipelineCursor).values(name=name, position=upto.isoformat())
    session.execute(statement.on_conflict_do_update(
        index_elements=[PipelineCursor.name],
        set_={"position": statement.excluded.position, "updated_at": func.now()},
    ))


def next_window(
    client: Client, after: datetime, max_rows: int = 50_000, before: datetime | None = None,
) -> Window | None:
    """The next window of landed rows, or None when nothing new has landed.

    Rows of one insert share a landing time, so the window ends on a whole insert. Rows landed
    from `before` on wait for the next batch: the live runner passes the landing horizon
    (core/inflight.py), since an insert still in flight carries an earlier landing time than
    inserts that began after it and are already visible.
    """
    blocks = client.query(
        "SELECT landed_at, count() FROM raw_events"
        " WHERE landed_at > {after:DateTime64(6, 'UTC')}"
        " AND landed_at < {before:DateTime64(6, 'UTC')}"
        " GROUP BY landed_at ORDER BY landed_at LIMIT 10000",
        parameters={"after": after, "before": before or datetime(9999, 1, 1, tzinfo=UTC)},
    ).result_rows
    if not blocks:
        return None
    total, upto = 0, blocks[0][0]
    for landed_at, count in blocks:
        if total and total + count > max_rows:
            break
        total += count
        upto = landed_at
    return Window(after, _utc(upto))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_raw_events(client: Client, window: Window) -> pl.DataFrame:
    table = client.query_arrow(
        f"SELECT {RAW_COLUMNS} FROM raw_events"
        " WHERE landed_at > {after:DateTime64(6, 'UTC')}"
        " AND landed_at <= {upto:DateTime64(6, 'UTC')}"
        " ORDER BY landed_at",
        parameters={"after": window.after, "upto": window.upto},
        use_strings=True,
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    # A worker that died mid-batch may have landed a row twice: in this window, or once in
    # an earlier one and again (marked as a retry) in this one.
    frame = frame.unique(subset=_RAW_KEY, keep="last", maintain_order=True)
    retried = frame.filter(pl.col("landing_retry") == 1)
    if retried.height:
        frame = frame.join(_landed_before(client, window, retried), on=_RAW_KEY, how="anti",
                           maintain_order="left")  # landing order: first releases depend on it
    return frame.drop("landing_retry")


_RAW_KEY = ["project_id", "item_type", "event_id"]


def _landed_before(client: Client, window: Window, rows: pl.DataFrame) -> pl.DataFrame:
    """The keys of `rows` that have a copy landed at or before the window's start: processed
    with an earlier window. Merges of raw_events keep an event's first landed copy, so that
    copy is still there to find (warehouse migration 0008)."""
    keys = list(rows.select(_RAW_KEY).iter_rows())
    found = client.query(
        "SELECT project_id, item_type, replaceAll(toString(event_id), '-', '') FROM raw_events"
        " WHERE landed_at <= {after:DateTime64(6, 'UTC')}"
        " AND (project_id, item_type, event_id) IN ("
        "  SELECT k.1, k.2, toUUID(k.3)"
        "  FROM (SELECT arrayJoin({keys:Array(Tuple(UInt64, String, String))}) AS k))",
        parameters={"after": window.after, "keys": keys},
    ).result_rows
    return pl.DataFrame(found, schema={name: rows.schema[name] for name in _RAW_KEY},
                        orient="row")


# --- what the pipelines need from storage ---------------------------------------------------


def scrub_configs(
    session: Session, project_ids: Iterable[int], hash_salt: str
) -> dict[int, ScrubConfig]:
    """Each project's scrubbing options. The salt (from SECRET_KEY) keeps hashed IPs from
    being reversed by hashing every address."""
    configs = {}
    rows = session.execute(select(Project.id, Project.settings).where(
        Project.id.in_(list(project_ids))))
    for project_id, settings in rows:
        options = (settings or {}).get("scrubbing") or {}
        try:
            configs[project_id] = ScrubConfig(
                ip_mode=options.get("ip_mode", "keep"),
                extra_patterns=tuple(options.get("extra_patterns", ())),
                safe_fields=tuple(options.get("safe_fields", ())),
                hash_salt=hash_salt,
            )
        except ValueError as exc:  # a bad pattern must not stop every project's events
            log.error("project %s has invalid scrubbing settings (%s); using the defaults",
                      project_id, exc)
            configs[project_id] = ScrubConfig(hash_salt=hash_salt)
    return configs


def ip_hash_salt() -> str:
    secret = get_settings().secret_key.encode()
    return hmac.new(secret, b"pulsetrace/ip-hash", hashlib.sha256).hexdigest()


# --- issues in PostgreSQL -------------------------------------------------------------------


def _release_ids(session: Session, rows: pl.DataFrame) -> dict[tuple[int, str], int]:
    """Releases seen in events are created on first sight, as Sentry does."""
    pairs = rows.filter(pl.col("release") != "").select(
        "organization_id", "project_id", "release").unique().rows()
    ids: dict[tuple[int, str], int] = {}
    for org, project, version in pairs:
        statement = insert(Release).values(organization_id=org, version=version)
        release_id = session.scalar(statement.on_conflict_do_update(
            index_elements=[Release.organization_id, Release.version],
            set_={"version": statement.excluded.version},
        ).returning(Release.id))
        assert release_id is not None
        link = insert(ReleaseProject).values(
            organization_id=org, release_id=release_id, project_id=project)
        session.execute(link.on_conflict_do_nothing())
        ids[(org, version)] = release_id
    return ids


def _project_keys_in(project_id: Any, key: Any, keys: list[tuple[int, str]]) -> Any:
    """Rows whose (project_id, key) is one of `keys` (key: a text column).

    The keys go as two array parameters: a list of row(...) items takes two parameters each
    (PostgreSQL takes 65,535 a statement) and its parser recurses on every item (10,000 of
    them exceeded its stack depth), so a window of that many issues (a backlog of unique
    messages, a reprocessing) failed storing, again and again."""
    projects = literal([p for p, _ in keys], ARRAY(BigInteger))
    texts = literal([k for _, k in keys], ARRAY(String))
    pairs = func.unnest(projects, texts).table_valued("project_id", "key").render_derived("keys")
    return tuple_(project_id, key).in_(select(pairs.c.project_id, pairs.c.key))


def _issue_keys_in(keys: list[tuple[int, str]]) -> Any:
    """Issues whose (project, fingerprint) is one of `keys`."""
    return _project_keys_in(Issue.project_id, Issue.fingerprint_hash, keys)


def _existing_issues(session: Session, summary: pl.DataFrame) -> pl.DataFrame:
    keys = summary.select("project_id", "fingerprint_hash").rows()
    schema = {"id": pl.Int64, "project_id": pl.UInt64, "fingerprint_hash": pl.Utf8,
              "status": pl.Utf8, "resolved_release": pl.Utf8,
              "resolved_at": pl.Datetime("us", "UTC")}
    if not keys:
        return pl.DataFrame(schema=schema)
    resolved_release = select(Release.version).where(
        Release.id == Issue.resolved_in_release_id).scalar_subquery()
    found = session.execute(
        select(Issue.id, Issue.project_id, Issue.fingerprint_hash, Issue.status,
               resolved_release, Issue.resolved_at)
        .where(_issue_keys_in(keys))
    ).all()
    rows = [(i, p, f, str(s.value if hasattr(s, "value") else s), r, a)
            for i, p, f, s, r, a in found]
    return pl.DataFrame(rows, schema=schema, orient="row")


def _merged_into_stored(
    times_seen: Any, first_seen: Any, last_seen: Any, title: Any, culprit: Any, level: Any,
    release_id: Any, release_seen: Any,
) -> dict[str, Any]:
    """The stored issue's columns once what a batch says of it (its events' counts, times,
    latest title, first release) is added. Order-independent, so that events stored in any
    order and in any split (windows, chunks of a window, late arrivals) leave the same issue:
    the title and culprit of its latest event (and level), the first release of its earliest
    one that names one."""
    issue = Issue.__table__.c
    latest = last_seen >= issue.last_seen
    # A batch's release replaces the stored one if none was known, or if its event happened
    # before the stored one's.
    earlier_release = release_seen < issue.first_release_seen
    return {
        "times_seen": issue.times_seen + times_seen,
        "first_seen": func.least(issue.first_seen, first_seen),
        "last_seen": func.greatest(issue.last_seen, last_seen),
        "title": case((latest, title), else_=issue.title),
        "culprit": case((latest, culprit), else_=issue.culprit),
        "level": case((latest, level), else_=issue.level),
        "first_release_id": case(
            (release_id.is_(None), issue.first_release_id),
            (issue.first_release_id.is_(None) | earlier_release, release_id),
            else_=issue.first_release_id),
        "first_release_seen": case(
            (release_id.is_(None), issue.first_release_seen),
            (issue.first_release_id.is_(None) | earlier_release, release_seen),
            else_=issue.first_release_seen),
    }


# New issues inserted by one statement: 13 parameters each, PostgreSQL takes 65,535.
NEW_ISSUES_PER_STATEMENT = 2_000


def apply_issue_changes(
    session: Session, rows: pl.DataFrame, previous: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, int, int]:
    """Upsert the batch's issues; returns (project_id, fingerprint_hash, id), new, regressed.
    previous: when reprocessing, the issue each event was stored with before (project_id,
    event_id, issue_id; see `_previous_issues`): an event that changed issues counts in its
    new one and no longer in the old one, and one that did not adds nothing. Without it
    (live), every event is counted."""
    # PostgreSQL text cannot hold NUL, which an SDK may send (\u0000 in a message or release).
    rows = rows.with_columns(pl.col(name).str.replace_all("\x00", "", literal=True)
                             for name in ("title", "culprit", "level", "release"))
    summary = summarize_batch(rows)
    if summary.is_empty():
        return pl.DataFrame(schema={"project_id": pl.UInt64, "fingerprint_hash": pl.Utf8,
                                    "id": pl.Int64}), 0, 0
    releases = _release_ids(session, rows)
    existing = _existing_issues(session, summary)
    left = None
    if previous is not None:
        summary, left = count_regrouped(summary, rows, existing, previous)
    # The dates order releases that are no semver (git shas): those the batch names and those
    # the issues were resolved in, each organization's own.
    versions = {v for _, v in releases} | set(existing["resolved_release"].drop_nulls())
    release_dates: dict[int, dict[str, datetime]] = {}
    for org, version, date in session.execute(
        select(Release.organization_id, Release.version,
               func.coalesce(Release.date_released, Release.created_at))
        # One array parameter, however many versions (see _issue_keys_in).
        .where(Release.version == any_(literal(sorted(versions), ARRAY(String))),
               Release.organization_id.in_(set(summary["organization_id"])))):
        release_dates.setdefault(org, {})[version] = date
    changes = plan_issue_changes(summary, existing, release_dates)

    new_issues = [{
        "organization_id": issue["organization_id"], "project_id": issue["project_id"],
        "fingerprint_hash": issue["fingerprint_hash"], "title": issue["title"] or "<untitled>",
        "culprit": issue["culprit"], "level": issue["level"][:16],
        "first_seen": issue["first_seen"], "last_seen": issue["last_seen"],
        "times_seen": issue["times_seen"],
        "first_release_id": (release_id := releases.get(
            (issue["organization_id"], issue["first_release"]))),
        "first_release_seen": issue["first_release_seen"] if release_id else None,
        "status": IssueStatus.unresolved, "substatus": IssueSubstatus.new,
    } for issue in changes.new.iter_rows(named=True)]
    # Many rows a statement: one statement per new issue took minutes for a window of tens of
    # thousands (a backlog of unique messages, a reprocessing after a grouping change).
    for start in range(0, len(new_issues), NEW_ISSUES_PER_STATEMENT):
        statement = insert(Issue).values(new_issues[start:start + NEW_ISSUES_PER_STATEMENT])
        # Another runner may have made one meanwhile: then this batch's events add to it.
        new = statement.excluded
        session.execute(statement.on_conflict_do_update(
            index_elements=[Issue.project_id, Issue.fingerprint_hash],
            set_=_merged_into_stored(new.times_seen, new.first_seen, new.last_seen, new.title,
                                     new.culprit, new.level, new.first_release_id,
                                     new.first_release_seen),
        ))
    if not changes.seen.is_empty():
        issue = Issue.__table__.c
        session.execute(
            update(Issue.__table__).where(issue.id == bindparam("b_id")).values(
                _merged_into_stored(
                    bindparam("b_times_seen"), bindparam("b_first_seen"),
                    bindparam("b_last_seen"), bindparam("b_title"), bindparam("b_culprit"),
                    bindparam("b_level"),
                    # Typed: PostgreSQL cannot tell the type of a parameter that is only
                    # compared to NULL.
                    bindparam("b_release_id", type_=issue.first_release_id.type),
                    bindparam("b_release_seen", type_=issue.first_release_seen.type))),
            [{"b_id": r["id"], "b_times_seen": r["times_seen"], "b_first_seen": r["first_seen"],
              "b_last_seen": r["last_seen"], "b_title": r["title"] or "<untitled>",
              "b_culprit": r["culprit"], "b_level": r["level"][:16],
              "b_release_id": releases.get((r["organization_id"], r["first_release"])),
              "b_release_seen": r["first_release_seen"]}
             for r in changes.seen.iter_rows(named=True)],
        )
    if left is not None and not left.is_empty():
        # The issues regrouped events left keep their other counters and dates. One left
        # with none is kept, as Sentry keeps it; never below 0, should it have been
        # counted short before.
        issue = Issue.__table__.c
        session.execute(
            update(Issue.__table__)
            .where(issue.id == bindparam("b_id"), issue.project_id == bindparam("b_project"))
            .values(times_seen=func.greatest(issue.times_seen - bindparam("b_left"), 0)),
            [{"b_id": r["id"], "b_project": r["project_id"], "b_left": r["times_seen"]}
             for r in left.iter_rows(named=True)],
        )
    for regression in changes.regressed.iter_rows(named=True):
        # Only while still resolved: a user may have ignored or reopened it meanwhile.
        session.execute(
            update(Issue)
            .where(Issue.id == regression["id"], Issue.status == IssueStatus.resolved)
            .values(status=IssueStatus.unresolved, substatus=IssueSubstatus.regressed,
                    regressed_in_release_id=releases.get(
                        (regression["organization_id"], regression["release"])),
                    resolved_in_release_id=None, resolved_at=None)
        )
    session.flush()
    keys = summary.select("project_id", "fingerprint_hash").rows()
    ids = session.execute(
        select(Issue.project_id, Issue.fingerprint_hash, Issue.id).where(_issue_keys_in(keys))
    ).all()
    frame = pl.DataFrame(ids, schema={"project_id": pl.UInt64, "fingerprint_hash": pl.Utf8,
                                      "id": pl.Int64}, orient="row")
    return frame, changes.new.height, changes.regressed.height


# --- the batch ------------------------------------------------------------------------------


def _link_feedback(client: Client, feedback: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Feedback names the event it is about; give it that event's issue, if that event is of
    the feedback's own project (an id from elsewhere links nothing)."""
    linked = feedback.select("project_id", "event_id").drop_nulls().unique().rows()
    if not linked:
        return feedback
    known = {(p, e): i for p, e, i in events.select("project_id", "event_id", "issue_id").rows()}
    missing = [(p, e) for p, e in linked if (p, e) not in known]
    if missing:
        found = client.query(
            "SELECT project_id, replaceAll(toString(event_id), '-', ''), issue_id FROM events"
            " WHERE event_id IN {ids:Array(UUID)} AND project_id IN {projects:Array(UInt64)}",
            parameters={"ids": [e for _, e in missing],
                        "projects": sorted({p for p, _ in missing})}).result_rows
        known.update({(p, e): i for p, e, i in found})
    issue_ids = [known.get((p, e), 0) if e is not None else 0
                 for p, e in feedback.select("project_id", "event_id").rows()]
    return feedback.with_columns(pl.Series("issue_id", issue_ids, dtype=pl.UInt64))


# An SDK sends an event again when it never got the answer to the first send (a timeout, an
# app closed mid-request; mobile SDKs keep events on disk and send them at the next start).
# Ingest drops an id it accepted in the last SEEN_BUCKET_SECONDS (at least); a copy sent later
# comes at least that long after the event's time, so only events received that long after
# their time (half of it, for a clock a little ahead) are looked up, a handful per window.
RESENT_AFTER = timedelta(seconds=SEEN_BUCKET_SECONDS / 2)


def _not_counted_before(client: Client, events: pl.DataFrame) -> pl.DataFrame:
    """`events` without those an earlier copy of which is stored already (received earlier,
    so not a row this window wrote in an attempt that then failed to commit), as Sentry drops
    an event id it has seen. The copy's row is found in its day of `events`: a copy has its
    event's time."""
    late = events.filter(pl.col("received_at") - pl.col("timestamp") > RESENT_AFTER)
    if late.is_empty():
        return events
    where, parameters = _stored_rows_of(late)
    earlier = client.query(
        "SELECT project_id, replaceAll(toString(event_id), '-', ''), min(received_at)"
        f" FROM events {where} GROUP BY project_id, event_id", parameters=parameters,
    ).result_rows
    if not earlier:
        return events
    stored = pl.DataFrame(earlier, orient="row", schema={
        "project_id": pl.UInt64, "event_id": pl.Utf8,
        "stored_received_at": events.schema["received_at"]})
    resent = late.join(stored, on=["project_id", "event_id"]).filter(
        pl.col("stored_received_at") < pl.col("received_at")).select("project_id", "event_id")
    if resent.height:
        log.info("%d events sent again after they were counted are not counted again",
                 resent.height)
    return events.join(resent, on=["project_id", "event_id"], how="anti", maintain_order="left")


_PREVIOUS_SCHEMA = {"project_id": pl.UInt64, "event_id": pl.Utf8, "issue_id": pl.UInt64}


def _previous_issues(client: Client, events: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """The issue each of `events` counts in now (project_id, event_id, issue_id), for those
    processed before: what reprocessing compares their issue now with. Read before the
    batch's rows replace them: from those rows, unless an attempt that did not commit has
    replaced them already: then from the record it `held` (see ReprocessingPreviousIssue)."""
    if events.is_empty():
        return pl.DataFrame(schema=_PREVIOUS_SCHEMA)
    # A reprocessed row replaces the one of its (project, day, event id).
    where, parameters = _stored_rows_of(events)
    found = client.query(
        "SELECT project_id, replaceAll(toString(event_id), '-', ''), issue_id FROM events FINAL"
        f" {where}", parameters=parameters,
    ).result_rows
    stored = pl.DataFrame(found, schema=_PREVIOUS_SCHEMA, orient="row")
    if held.is_empty():
        return stored
    return pl.concat([stored.join(held, on=["project_id", "event_id"], how="anti"), held])


def _held_previous_issues(session: Session, events: pl.DataFrame) -> pl.DataFrame:
    """The records an uncommitted attempt left for `events` (issue_id 0: in none)."""
    previous = ReprocessingPreviousIssue
    held = session.execute(
        select(previous.project_id, previous.event_id, previous.issue_id).where(
            _project_keys_in(previous.project_id, previous.event_id,
                             list(events.select("project_id", "event_id").iter_rows())))
    ).all()
    return pl.DataFrame(held, schema=_PREVIOUS_SCHEMA, orient="row")


def _hold_previous_issues(engine: Engine, events: pl.DataFrame, previous: pl.DataFrame) -> bool:
    """Commit, apart from the window's transaction, the issue each of `events` that moves was
    counted in, before its row in ClickHouse names the new one. A record already there (an
    attempt before failed) is kept: it is the one counts were committed by. Returns whether
    any event moves."""
    moved = (
        events.select("project_id", "event_id", "issue_id")
        .join(previous.rename({"issue_id": "previous_id"}), on=["project_id", "event_id"],
              how="left")
        .with_columns(pl.col("previous_id").fill_null(0))
        .filter(pl.col("previous_id") != pl.col("issue_id"))
    )
    if moved.is_empty():
        return False
    records = [{"project_id": p, "event_id": e, "issue_id": i}
               for p, e, i in moved.select("project_id", "event_id", "previous_id").iter_rows()]
    with system_session(engine) as apart, apart.begin():
        for start in range(0, len(records), 10_000):  # 3 parameters a row, 65,535 a statement
            apart.execute(insert(ReprocessingPreviousIssue).values(
                records[start:start + 10_000]).on_conflict_do_nothing())
    return True


def _stored_rows_of(events: pl.DataFrame) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (and its parameters) of the rows of `events` in ClickHouse `events`:
    the days of their times bound the read to their parts of the table (ordered by project,
    day, event id)."""
    return (
        "WHERE project_id IN {projects:Array(UInt64)}"
        " AND timestamp >= toStartOfDay({first:DateTime64(3, 'UTC')})"
        " AND timestamp < toStartOfDay({last:DateTime64(3, 'UTC')}) + INTERVAL 1 DAY"
        " AND (project_id, event_id) IN ("
        "  SELECT k.1, toUUID(k.2)"
        "  FROM (SELECT arrayJoin({keys:Array(Tuple(UInt64, String))}) AS k))",
        {"projects": events["project_id"].unique().to_list(),
         "first": events["timestamp"].min(), "last": events["timestamp"].max(),
         "keys": list(events.select("project_id", "event_id").iter_rows())},
    )


def _store_chunk(session: Session, engine: Engine, client: Client, processed: ProcessedRows,
                 reprocessing: bool, result: BatchResult) -> pl.DataFrame:
    """The issues of a chunk of a window's events, then its processed events and transactions.
    Chunks are stored in order in the window's one transaction, so storing a window in chunks
    leaves the same issues as storing it whole. Returns the events' (project_id, event_id,
    issue_id)."""
    held_before = held_now = False
    if reprocessing:
        counted = processed.events
        held = _held_previous_issues(session, counted)
        held_before, previous = not held.is_empty(), _previous_issues(client, counted, held)
    else:
        counted, previous = _not_counted_before(client, processed.events), None
    issue_ids, new_issues, regressions = apply_issue_changes(session, counted, previous)
    events = with_issue_ids(counted, issue_ids)
    if previous is not None:
        held_now = _hold_previous_issues(engine, events, previous)
    for table, frame in (("events", events), ("transactions", processed.transactions)):
        if frame.height:
            insert_rows(client, table, frame.to_arrow())
    if held_before or held_now:
        # Gone when the counts they describe commit; left, should they not.
        kept = ReprocessingPreviousIssue
        session.execute(delete(kept).where(_project_keys_in(
            kept.project_id, kept.event_id,
            list(events.select("project_id", "event_id").iter_rows()))))
    result.events += events.height
    result.transactions += processed.transactions.height
    result.new_issues += new_issues
    result.regressions += regressions
    return events.select("project_id", "event_id", "issue_id")


# Held by a reprocessing window's transaction, so that two reprocessings of one range (run
# at once) do not both move the same event's count: the second reads the first's rows. Live
# windows hold it shared: storing beside a reprocessing window, the two deadlocked on the
# issues both update, and one was aborted (run again, a reprocessing window then finds its
# moves in ReprocessingPreviousIssue). The live runner waits a reprocessing window's few
# seconds instead.
REPROCESSING_LOCK = 0x70756C7365  # "pulse"


def process_window(
    client: Client,
    engine: Engine,
    blobs: BlobStore,
    window: Window,
    source_map_cache: SourceMapCache | None = None,
    cursor_name: str | None = CURSOR_NAME,
    pool: PipelinePool | None = None,
) -> BatchResult:
    """Process one window; with a cursor_name, that cursor moves to the window's end in the
    same transaction, and a window (or the part of it) the cursor has passed is skipped.
    Without one (reprocessing) an event counts in an issue only if it was not in it already,
    and no longer in the one it leaves (see apply_issue_changes). A pool runs a large
    window's pipeline in several processes."""
    result = BatchResult()
    with system_session(engine) as session, session.begin():
        if cursor_name is None:
            session.execute(select(func.pg_advisory_xact_lock(REPROCESSING_LOCK)))
        else:
            # Shared: live windows do not wait for one another here, but a reprocessing window
            # waits for those in flight and they for it (see REPROCESSING_LOCK).
            session.execute(select(func.pg_advisory_xact_lock_shared(REPROCESSING_LOCK)))
            done_upto = _claim_cursor(session, cursor_name)
            if done_upto >= window.upto:
                return result  # already processed: running it again changes nothing
            window = Window(max(window.after, done_upto), window.upto)
        raw = read_raw_events(client, window)
        result.raw = raw.height
        configs = scrub_configs(session, raw["project_id"].unique().to_list(), ip_hash_salt())
        orphans = raw.filter(~pl.col("project_id").is_in(list(configs)))
        if orphans.height:
            # Events of a project deleted since they were accepted: nothing can hold them,
            # and retrying would block every project's events behind them.
            log.warning("dropping %d raw events of deleted projects %s", orphans.height,
                        sorted(orphans["project_id"].unique().to_list()))
            raw = raw.filter(pl.col("project_id").is_in(list(configs)))
        if raw.height:
            if pool is not None and pool.parts_for(raw.height) > 1:
                chunks = pool.run_in_chunks(raw, configs)
            else:
                chunks = (process_isolating(raw, configs, StoredSourceMaps(engine, blobs),
                                            source_map_cache) for _ in (1,))  # one chunk
            issues_of_events, feedback, failed = [], [], [no_failures()]
            with closing(chunks):
                for processed in chunks:
                    issues_of_events.append(_store_chunk(
                        session, engine, client, processed, cursor_name is None, result))
                    feedback.append(processed.feedback)
                    if processed.failed.height:
                        failed.append(processed.failed)
            # Feedback last: it may name an event of any chunk of the window.
            linked = _link_feedback(client, pl.concat(feedback), pl.concat(issues_of_events))
            if linked.height:
                insert_rows(client, "feedback", linked.to_arrow())
            result.feedback = linked.height
            # Before the cursor moves, in its transaction: a window run again (its commit
            # failed) records the same events again, which keeps one record of each.
            set_aside = pl.concat(failed).with_columns(
                pl.col("landed_at").fill_null(window.upto))  # always read; never left empty
            if set_aside.height:
                record_dead_letters(client, set_aside)
                result.dead_lettered = set_aside.height
                log.warning("%d of %d events of window %s..%s set aside (dead_letter_events): "
                            "%s", set_aside.height, raw.height, window.after.isoformat(),
                            window.upto.isoformat(), _failure_counts(set_aside))
            if cursor_name is None:
                # Reprocessing: events set aside before that went through now.
                result.retried = _mark_retried(client, window, raw, set_aside)
        if cursor_name is not None:
            _save_cursor(session, window.upto, cursor_name)
    return result


def reprocess_window(
    client: Client, engine: Engine, blobs: BlobStore, start: datetime, end: datetime,
    max_rows: int = 50_000,
) -> BatchResult:
    """Run the pipelines again over raw events that landed in [start, end), e.g. after a
    grouping fix. Processed rows replace themselves; the live cursor is not touched, and
    each event counts once, in the issue it is in now: running it again changes nothing.
    Only what the live runner has processed is reprocessed (`end` is cut at its cursor): it
    processes the rest itself, and counting those events here too would count them twice.
    Events set aside before (dead_letter_events) are processed like any other; those that
    go through now have their records marked retried, those that still fail are recorded
    again with their new error."""
    total = BatchResult()
    last = min(end - timedelta(microseconds=1), read_cursor(engine))  # windows include upto
    after = start - timedelta(microseconds=1)
    while after < last:
        window = next_window(client, after, max_rows=max_rows)
        if window is None or window.after >= last:
            break
        window = Window(window.after, min(window.upto, last))
        total.add(process_window(client, engine, blobs, window, cursor_name=None))
        after = window.upto
    return total


# --- events set aside -----------------------------------------------------------------------

DEAD_LETTER_COLUMNS = (
    "organization_id", "project_id", "event_id", "item_type", "received_at", "landed_at",
    "failed_at", "stage", "error_type", "error_message",
)


def record_dead_letters(client: Client, failed: pl.DataFrame, retried: bool = False) -> None:
    """Records of events set aside (pipelines.batch.FAILED_SCHEMA), or with `retried`, the
    marks that they went through since. One record is kept per event (the newest)."""
    rows = failed
    if "failed_at" not in rows.columns:
        rows = rows.with_columns(pl.lit(datetime.now(UTC)).cast(pl.Datetime("ms", "UTC"))
                                 .alias("failed_at"))
    rows = rows.select(DEAD_LETTER_COLUMNS).with_columns(
        pl.lit(int(retried), pl.UInt8).alias("retried"))
    insert_rows(client, "dead_letter_events", rows.to_arrow())


def _key_columns() -> list[pl.Expr]:
    """_RAW_KEY of one type whatever frame it comes from (item_type may read as a category)."""
    return [pl.col("project_id").cast(pl.UInt64), pl.col("item_type").cast(pl.Utf8),
            pl.col("event_id").cast(pl.Utf8)]


def _failure_counts(failed: pl.DataFrame) -> str:
    counts = failed.group_by("stage", "error_type").len().sort("len", descending=True).rows()
    return ", ".join(f"{count} in {stage} ({error})" for stage, error, count in counts)


_DEAD_LETTER_SELECT = (
    "SELECT organization_id, project_id, replaceAll(toString(event_id), '-', '') AS event_id,"
    " item_type, received_at, landed_at, failed_at, stage, error_type, error_message"
    " FROM dead_letter_events FINAL"
)


def _mark_retried(
    client: Client, window: Window, raw: pl.DataFrame, failed: pl.DataFrame
) -> int:
    """Marks the records of the window's events set aside before that were processed now
    (in raw, not failed again); returns how many. Only reprocessing asks: the live path never
    meets an event twice, and adds no query to a window where nothing failed."""
    projects = raw["project_id"].unique().to_list()
    if not projects:
        return 0
    found = client.query_arrow(
        f"{_DEAD_LETTER_SELECT}"
        " WHERE project_id IN {projects:Array(UInt64)}"
        " AND landed_at > {after:DateTime64(6, 'UTC')} AND landed_at <= {upto:DateTime64(6, 'UTC')}"
        " AND retried = 0",
        parameters={"projects": projects, "after": window.after, "upto": window.upto},
        use_strings=True,
    )
    records = pl.from_arrow(found)
    assert isinstance(records, pl.DataFrame)
    if records.is_empty():
        return 0
    through = records.with_columns(_key_columns()).join(
        raw.select(_key_columns()), on=_RAW_KEY, how="semi",
    ).join(failed.select(_key_columns()), on=_RAW_KEY, how="anti")
    if through.height:
        record_dead_letters(client, through, retried=True)
        log.info("%d events set aside before were processed now", through.height)
    return through.height


@dataclass(frozen=True)
class DeadLetter:
    organization_id: int
    project_id: int
    event_id: str
    item_type: str
    received_at: datetime
    landed_at: datetime
    failed_at: datetime
    stage: str
    error_type: str
    error_message: str


def dead_letters(
    client: Client, project_ids: Iterable[int] | None = None, limit: int = 50
) -> list[DeadLetter]:
    """Events set aside and not processed since, the latest failures first; those of
    `project_ids` only, if given."""
    where, parameters = " WHERE retried = 0", {"limit": limit}
    if project_ids is not None:
        where += " AND project_id IN {projects:Array(UInt64)}"
        parameters["projects"] = sorted(set(project_ids))
    rows = client.query(
        f"{_DEAD_LETTER_SELECT}{where} ORDER BY failed_at DESC, event_id LIMIT {{limit:UInt32}}",
        parameters=parameters,
    ).result_rows
    return [DeadLetter(*row[:4], *(_utc(t) for t in row[4:7]), *row[7:]) for row in rows]


def dead_letters_since(client: Client, since: datetime) -> int:
    """How many events failed since `since` and are still set aside."""
    return int(client.command(
        "SELECT count() FROM dead_letter_events FINAL"
        " WHERE retried = 0 AND failed_at >= {since:DateTime64(3, 'UTC')}",
        parameters={"since": since}))
