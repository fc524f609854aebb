-- The tag breakdown of an issue: for every tag key, its ten most frequent values with their
-- event counts and their share of the events that carry the key, plus how many distinct
-- values the key has. Only issues with newly processed events are recomputed.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='issue_id',
    order_by='(organization_id, project_id, issue_id, tag_key, rank)',
    engine='MergeTree()',
) }}

with value_counts as (
    select
        organization_id,
        project_id,
        issue_id,
        tag_key,
        tag_value,
        sum(events) as events,
        max(processed_upto) as processed_upto
    from {{ ref('int_issue_tag_counts_daily') }}
    {% if is_incremental() %}
    where issue_id in ({{ changed_keys(ref('int_issue_tag_counts_daily'), 'issue_id') }})
    {% endif %}
    group by organization_id, project_id, issue_id, tag_key, tag_value
),

ranked as (
    select
        *,
        row_number() over (
            partition by issue_id, tag_key order by events desc, tag_value
        ) as value_rank,
        sum(events) over (partition by issue_id, tag_key) as key_events,
        count() over (partition by issue_id, tag_key) as distinct_values,
        max(processed_upto) over (partition by issue_id) as issue_processed_upto
    from value_counts
)

select
    organization_id,
    project_id,
    issue_id,
    tag_key,
    tag_value,
    toUInt8(value_rank) as rank,
    events,
    key_events,
    events / key_events as share,
    distinct_values,
    issue_processed_upto as processed_upto
from ranked
where value_rank <= 10
