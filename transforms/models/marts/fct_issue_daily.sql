-- Per issue and day: the hourly mart rolled up, for periods counted in days (the 14-day issue
-- stream and its daily sparkline): 24 times fewer rows and user states to merge. Rebuilt a
-- day at a time, for the days whose hourly rows were rebuilt.
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='day',
    order_by='(organization_id, project_id, day, issue_id)',
    engine='MergeTree()',
) }}

select
    organization_id,
    project_id,
    issue_id,
    toDate(hour) as day,
    sum(events) as events,
    uniqExactMergeState(users_state) as users_state,
    min(first_seen) as first_seen,
    max(last_seen) as last_seen,
    max(processed_upto) as processed_upto
from {{ ref('fct_issue_hourly') }}
{% if is_incremental() %}
where toDate(hour) in (
    select distinct toDate(hour) from {{ ref('fct_issue_hourly') }}
    where processed_upto > {{ watermark() }}
)
{% endif %}
group by organization_id, project_id, issue_id, day
