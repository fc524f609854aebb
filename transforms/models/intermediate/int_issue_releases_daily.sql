-- Events and affected users per issue and release, per day; the releases mart is built from
-- this. Rebuilt a day at a time, like every incremental model here.
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='day',
    order_by='(project_id, release, issue_id, day)',
    engine='MergeTree()',
) }}

select
    organization_id,
    project_id,
    release,
    issue_id,
    toDate(timestamp) as day,
    count() as events,
    uniqExactStateIf(user_key, user_key != '') as users_state,
    min(timestamp) as first_seen,
    max(timestamp) as last_seen,
    max(processed_at) as processed_upto
from {{ ref('stg_pulsetrace__events') }}
where issue_id != 0 and release != ''
{% if is_incremental() %}
    and {{ in_changed_days('timestamp', source('pulsetrace', 'events'), 'timestamp') }}
{% endif %}
group by organization_id, project_id, release, issue_id, day
