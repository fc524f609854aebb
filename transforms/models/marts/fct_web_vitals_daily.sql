-- Web Vitals per project, page and release per day: p50, p75 (the figure Google rates a page
-- by) and p95, and the share of good / needs-improvement / poor samples. Percentiles are
-- exact (quantilesExactInclusive: linear interpolation between the closest ranks, as
-- numpy and Python's statistics.quantiles(method='inclusive') compute them).
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='day',
    order_by='(organization_id, project_id, day, vital, page, release)',
    engine='MergeTree()',
) }}

with samples as (
    select *
    from {{ ref('int_web_vital_samples') }}
    {% if is_incremental() %}
    where {{ in_changed_days('timestamp', source('pulsetrace', 'transactions'), 'timestamp') }}
    {% endif %}
),

aggregated as (
    select
        organization_id,
        project_id,
        toDate(timestamp) as day,
        page,
        release,
        vital,
        count() as samples,
        quantilesExactInclusive(0.5, 0.75, 0.95)(value) as percentiles,
        countIf(rating = 'good') as good,
        countIf(rating = 'needs_improvement') as needs_improvement,
        countIf(rating = 'poor') as poor,
        max(processed_at) as processed_upto
    from samples
    group by organization_id, project_id, day, page, release, vital
)

select
    organization_id,
    project_id,
    day,
    page,
    release,
    vital,
    samples,
    percentiles[1] as p50,
    percentiles[2] as p75,
    percentiles[3] as p95,
    good,
    needs_improvement,
    poor,
    good / samples as good_share,
    needs_improvement / samples as needs_improvement_share,
    poor / samples as poor_share,
    processed_upto
from aggregated
