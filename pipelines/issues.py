"""From fingerprinted events to issue changes: which issues are new, which were seen again,
and which come back as regressions.

A regression: an issue resolved in release X gets an event from a release newer than X
(semantic versions when both parse, else the releases' dates); an issue resolved without a
release gets any event that happened after it was resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

# `package@1.2.3+build`, `v1.2`, `1.2.3-rc.1`: the version is after the last '@'.
_SEMVER = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def parse_version(release: str) -> tuple[tuple[int, ...], tuple[tuple[int, object], ...]] | None:
    """A sortable key for a release's version, or None when it is not a version (a git sha)."""
    match = _SEMVER.match(release.rsplit("@", 1)[-1].strip())
    if not match:
        return None
    numbers = tuple(int(part or 0) for part in match.groups()[:4])
    pre = match.group(5)
    # A pre-release sorts before its release: (0, parts) < (1,) .
    pre_key: tuple[tuple[int, object], ...] = (
        tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")) if pre else ((2, ""),)
    )
    return numbers, pre_key


def is_newer_release(
    candidate: str, baseline: str, release_dates: Mapping[str, datetime] | None = None
) -> bool:
    if not candidate or candidate == baseline:
        return False
    a, b = parse_version(candidate), parse_version(baseline)
    if a is not None and b is not None:
        return a > b
    dates = release_dates or {}
    if candidate in dates and baseline in dates:
        return dates[candidate] > dates[baseline]
    return False  # unknown order: never reopen on a guess


@dataclass(frozen=True)
class IssueChanges:
    """What the batch does to issues, for orchestration to apply in one transaction."""

    new: pl.DataFrame  # issues to create
    seen: pl.DataFrame  # existing issues seen again: what the batch's events say of them
    regressed: pl.DataFrame  # existing issues to reopen: id, organization_id, release


def summarize_batch(event_rows: pl.DataFrame) -> pl.DataFrame:
    """One row per (project, fingerprint) of a batch of `processed.event_rows`."""
    grouped = (
        # Stable: events of one time keep their landing order (the first release of a tie).
        event_rows.sort("timestamp", maintain_order=True)
        .group_by("organization_id", "project_id", "fingerprint_hash", maintain_order=True)
        .agg(
            pl.len().alias("times_seen"),
            pl.col("timestamp").min().alias("first_seen"),
            pl.col("timestamp").max().alias("last_seen"),
            pl.col("title").last(),
            pl.col("culprit").last(),
            pl.col("level").last(),
            # "Introduced in": the release of the earliest event that names one.
            pl.col("release").filter(pl.col("release") != "").first().fill_null("")
            .alias("first_release"),
            pl.col("timestamp").filter(pl.col("release") != "").min()
            .alias("first_release_seen"),
            pl.col("release").filter(pl.col("release") != "").alias("releases"),
        )
    )
    return grouped


def plan_issue_changes(
    batch: pl.DataFrame,
    existing: pl.DataFrame,
    release_dates: Mapping[int, Mapping[str, datetime]] | None = None,
) -> IssueChanges:
    """batch: `summarize_batch` output. existing: the issues already stored for those
    fingerprints, columns id, project_id, fingerprint_hash, status, resolved_release (version
    or null), resolved_at (or null). release_dates: per organization, the date of each release
    the batch names and each release the existing issues were resolved in (versions that are
    no semver are ordered by them)."""
    joined = batch.join(existing, on=["project_id", "fingerprint_hash"], how="left")
    new = joined.filter(pl.col("id").is_null()).select(
        "organization_id", "project_id", "fingerprint_hash", "title", "culprit", "level",
        "first_seen", "last_seen", "times_seen", "first_release", "first_release_seen",
    )
    known = joined.filter(pl.col("id").is_not_null())
    seen = known.select("id", "organization_id", "title", "culprit", "level", "first_seen",
                        "last_seen", "times_seen", "first_release", "first_release_seen")
    regressed_rows = []
    for row in known.filter(pl.col("status") == "resolved").iter_rows(named=True):
        release = _regressing_release(row, (release_dates or {}).get(row["organization_id"]))
        if release is not None:
            regressed_rows.append({"id": row["id"], "organization_id": row["organization_id"],
                                   "release": release})
    regressed = pl.DataFrame(
        regressed_rows, schema={"id": pl.Int64, "organization_id": pl.UInt64,
                                "release": pl.Utf8}, orient="row"
    )
    return IssueChanges(new=new, seen=seen, regressed=regressed)


def count_regrouped(
    batch: pl.DataFrame, event_rows: pl.DataFrame, existing: pl.DataFrame,
    previous: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reprocessing: each event counts once, in the issue it is in now.

    batch: `summarize_batch(event_rows)`. existing: the stored issues of its fingerprints (id,
    project_id, fingerprint_hash). previous: the issue each event was stored with when it was
    processed before (project_id, event_id, issue_id), for the events that were. An event
    adds to its issue unless it was in it already, and is taken from the issue it was in if
    that is another one. Returns the batch with these times_seen, and the issues events left:
    project_id, id, times_seen (how many left it)."""
    key = ["project_id", "fingerprint_hash"]
    events = (
        event_rows.select("project_id", "event_id", "fingerprint_hash")
        .join(existing.select(*key, "id"), on=key, how="left")
        .join(previous.filter(pl.col("issue_id") != 0)
              .select("project_id", "event_id", pl.col("issue_id").cast(pl.Int64)
                      .alias("previous_id")),
              on=["project_id", "event_id"], how="left")
        # No previous issue, or a new issue now (no id yet): counted where it is now.
        .with_columns((pl.col("previous_id") != pl.col("id")).fill_null(True).alias("moved"))
    )
    added = events.group_by(key).agg(pl.col("moved").sum().alias("times_seen"))
    counted = (batch.drop("times_seen").join(added, on=key, how="left", maintain_order="left")
               .select(batch.columns))
    left = (events.filter(pl.col("moved") & pl.col("previous_id").is_not_null())
            .group_by("project_id", "previous_id").agg(pl.len().alias("times_seen"))
            .rename({"previous_id": "id"}))
    return counted, left


def with_issue_ids(event_rows: pl.DataFrame, issue_ids: pl.DataFrame) -> pl.DataFrame:
    """Fill `issue_id` from a (project_id, fingerprint_hash, id) frame of stored issues."""
    ids = issue_ids.select(
        pl.col("project_id").cast(pl.UInt64), "fingerprint_hash",
        pl.col("id").cast(pl.UInt64).alias("_issue_id"),
    )
    return (
        event_rows.join(ids, on=["project_id", "fingerprint_hash"], how="left")
        .with_columns(pl.col("_issue_id").fill_null(0).alias("issue_id"))
        .drop("_issue_id")
    )


def _regressing_release(
    row: dict[str, object], release_dates: Mapping[str, datetime] | None
) -> str | None:
    """The release that reopens a resolved issue ("" when it has none), or None."""
    releases = [str(r) for r in row["releases"] or []]  # type: ignore[attr-defined]
    baseline = row.get("resolved_release")
    if baseline:
        newer = [r for r in releases if is_newer_release(r, str(baseline), release_dates)]
        return newer[-1] if newer else None
    resolved_at = row.get("resolved_at")
    if isinstance(resolved_at, datetime) and row["last_seen"] > resolved_at:  # type: ignore[operator]
        return releases[-1] if releases else ""
    return None
