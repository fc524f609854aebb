-- p50 <= p95 <= p99, errors never exceed requests.
select *
from {{ ref('fct_api_latency_daily') }}
where not (p50_ms <= p95_ms and p95_ms <= p99_ms) or errors > requests
