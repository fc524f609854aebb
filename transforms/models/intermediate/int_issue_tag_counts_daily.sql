-- Events per issue, tag key and tag value, per day. Rebuilt a day at a time (only the days
-- with newly processed events), so the tag breakdown never rescans the whole history.
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='day',
    order_by='(project_id, issue_id, tag_key, tag_value, day)',
    engine='MergeTree()',
) }}

select
    organization_id,
    project_id,
    issue_id,
    toDate(timestamp) as day,
    tag_key,
    tag_value,
    count() as events,
    max(processed_at) as processed_upto
from {{ ref('int_event_tags') }}
{% if is_incremental() %}
where {{ in_changed_days('timestamp', source('pulsetrace', 'events'), 'timestamp') }}
{% endif %}
group by organization_id, project_id, issue_id, day, tag_key, tag_value
