-- One row per release of a project: its events, affected users and issues, the new issues it
-- introduced (first seen in this release) and the regressions it caused (issues that had
-- been seen in an earlier release, were absent from the release just before this one, and
-- are back in this one). Rebuilt whole on every build: it reads the small per-day
-- intermediate, not the events.
{{ config(
    order_by='(organization_id, project_id, release)',
    engine='MergeTree()',
) }}

with per_issue as (
    select
        organization_id,
        project_id,
        release,
        issue_id,
        sum(events) as events,
        min(first_seen) as first_seen,
        max(last_seen) as last_seen
    from {{ ref('int_issue_releases_daily') }}
    group by organization_id, project_id, release, issue_id
),

-- Releases in the order they first appeared in the project's events.
release_order as (
    select
        organization_id,
        project_id,
        release,
        min(first_seen) as release_first_seen,
        row_number() over (
            partition by organization_id, project_id order by min(first_seen), release
        ) as ordinal
    from per_issue
    group by organization_id, project_id, release
),

issue_releases as (
    select p.*, o.ordinal as ordinal
    from per_issue as p
    inner join release_order as o
        on o.organization_id = p.organization_id
        and o.project_id = p.project_id
        and o.release = p.release
),

issue_first as (
    select issue_id, min(ordinal) as first_ordinal
    from issue_releases
    group by issue_id
),

flags as (
    select
        r.organization_id as organization_id,
        r.project_id as project_id,
        r.release as release,
        r.issue_id as issue_id,
        r.ordinal = f.first_ordinal as is_new,
        r.ordinal > f.first_ordinal and previous.issue_id = 0 as is_regression
    from issue_releases as r
    inner join issue_first as f on f.issue_id = r.issue_id
    left join issue_releases as previous
        on previous.issue_id = r.issue_id and previous.ordinal = r.ordinal - 1
),

totals as (
    select
        organization_id,
        project_id,
        release,
        sum(events) as events,
        uniqExactMerge(users_state) as users,
        min(first_seen) as first_seen,
        max(last_seen) as last_seen
    from {{ ref('int_issue_releases_daily') }}
    group by organization_id, project_id, release
)

select
    t.organization_id as organization_id,
    t.project_id as project_id,
    t.release as release,
    t.first_seen as first_seen,
    t.last_seen as last_seen,
    t.events as events,
    t.users as users,
    count() as issues,
    countIf(f.is_new) as new_issues,
    countIf(f.is_regression) as regressed_issues,
    -- Sessions are not stored yet; the column exists so readers need not change when they are.
    cast(null as Nullable(Float64)) as crash_free_sessions
from totals as t
inner join flags as f
    on f.organization_id = t.organization_id
    and f.project_id = t.project_id
    and f.release = t.release
group by t.organization_id, t.project_id, t.release, t.first_seen, t.last_seen, t.events,
    t.users
