-- One row per piece of user feedback, deduplicated.
select
    organization_id,
    project_id,
    feedback_id,
    event_id,
    issue_id,
    timestamp,
    processed_at,
    message,
    url,
    release,
    environment
from {{ source('pulsetrace', 'feedback') }} final
