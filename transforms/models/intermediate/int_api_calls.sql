-- API requests from the performance data, from both sides: a backend's request transactions
-- (op http.server) and a front end's outgoing HTTP spans (op http.client; their description
-- is "METHOD URL"). Each keyed by method and normalized endpoint.
select
    organization_id,
    project_id,
    timestamp,
    processed_at,
    'server' as side,
    http_method,
    {{ endpoint_host('url') }} as host,
    {{ normalize_endpoint("if(url != '', url, transaction_name)") }} as endpoint,
    duration_ms,
    (status not in ('', 'ok') or http_status_code >= 500) as is_error
from {{ ref('stg_pulsetrace__transactions') }}
where op = 'http.server' and http_method != ''

union all

select
    organization_id,
    project_id,
    timestamp,
    processed_at,
    'client' as side,
    upper(splitByChar(' ', span.2)[1]) as http_method,
    {{ endpoint_host("substring(span.2, position(span.2, ' ') + 1)") }} as host,
    {{ normalize_endpoint("substring(span.2, position(span.2, ' ') + 1)") }} as endpoint,
    span.4 as duration_ms,
    span.3 not in ('', 'ok') as is_error
from {{ ref('stg_pulsetrace__transactions') }}
array join arrayZip(span_ops, span_descriptions, span_statuses, span_durations_ms) as span
where span.1 in ('http.client', 'http') and position(span.2, ' ') > 0
