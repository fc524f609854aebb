-- One row per processed transaction (page load, navigation, API request), deduplicated.
select
    organization_id,
    project_id,
    event_id,
    transaction_name,
    op,
    status,
    timestamp,
    duration_ms,
    processed_at,
    release,
    environment,
    user_key,
    http_method,
    http_status_code,
    url,
    measurements.name as measurement_names,
    measurements.value as measurement_values,
    spans.op as span_ops,
    spans.description as span_descriptions,
    spans.status as span_statuses,
    spans.duration_ms as span_durations_ms
from {{ source('pulsetrace', 'transactions') }} final
