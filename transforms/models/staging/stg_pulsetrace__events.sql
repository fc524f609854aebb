-- One row per processed error or message event. The source is a ReplacingMergeTree keyed by
-- event: FINAL keeps only the newest version of an event the pipeline processed twice.
select
    organization_id,
    project_id,
    event_id,
    issue_id,
    fingerprint_hash,
    timestamp,
    received_at,
    processed_at,
    level,
    platform,
    title,
    release,
    environment,
    transaction_name,
    user_key,
    browser_name,
    os_name,
    device_family,
    url,
    tags.key as tag_keys,
    tags.value as tag_values
from {{ source('pulsetrace', 'events') }} final
