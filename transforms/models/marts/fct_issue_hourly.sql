-- Per issue and hour: events, the distinct affected users (as a mergeable uniqExact state, so
-- any period's distinct users is exact), first and last event. The issue stream's period
-- totals and sparklines read this. Rebuilt a day at a time.
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='toDate(hour)',
    order_by='(organization_id, project_id, hour, issue_id)',
    engine='MergeTree()',
) }}

select
    organization_id,
    project_id,
    issue_id,
    toStartOfHour(timestamp) as hour,
    count() as events,
    uniqExactStateIf(user_key, user_key != '') as users_state,
    min(timestamp) as first_seen,
    max(timestamp) as last_seen,
    max(processed_at) as processed_upto
from {{ ref('stg_pulsetrace__events') }}
where issue_id != 0
{% if is_incremental() %}
    and {{ in_changed_days('timestamp', source('pulsetrace', 'events'), 'timestamp') }}
{% endif %}
group by organization_id, project_id, issue_id, hour
