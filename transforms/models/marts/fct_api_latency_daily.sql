-- API latency per endpoint (method + normalized URL) per day, from the backend's request
-- transactions and the front end's HTTP spans: requests, errors, error rate and exact
-- p50/p95/p99 durations.
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='day',
    order_by='(organization_id, project_id, day, side, http_method, host, endpoint)',
    engine='MergeTree()',
) }}

with calls as (
    select *
    from {{ ref('int_api_calls') }}
    {% if is_incremental() %}
    where {{ in_changed_days('timestamp', source('pulsetrace', 'transactions'), 'timestamp') }}
    {% endif %}
),

aggregated as (
    select
        organization_id,
        project_id,
        toDate(timestamp) as day,
        side,
        http_method,
        host,
        endpoint,
        count() as requests,
        countIf(is_error) as errors,
        quantilesExactInclusive(0.5, 0.95, 0.99)(duration_ms) as percentiles,
        max(processed_at) as processed_upto
    from calls
    group by organization_id, project_id, day, side, http_method, host, endpoint
)

select
    organization_id,
    project_id,
    day,
    side,
    http_method,
    host,
    endpoint,
    requests,
    errors,
    errors / requests as error_rate,
    percentiles[1] as p50_ms,
    percentiles[2] as p95_ms,
    percentiles[3] as p99_ms,
    processed_upto
from aggregated
