-- One row per issue: lifetime events and distinct users, first and last seen. Only the issues
-- whose hourly rows were rebuilt are recomputed (delete+insert on issue_id), from the hourly
-- mart, never from the events.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='issue_id',
    order_by='(organization_id, project_id, issue_id)',
    engine='MergeTree()',
) }}

select
    organization_id,
    project_id,
    issue_id,
    min(first_seen) as first_seen,
    max(last_seen) as last_seen,
    sum(events) as events,
    uniqExactMerge(users_state) as users,
    max(processed_upto) as processed_upto
from {{ ref('fct_issue_hourly') }}
{% if is_incremental() %}
where issue_id in ({{ changed_keys(ref('fct_issue_hourly'), 'issue_id') }})
{% endif %}
group by organization_id, project_id, issue_id
