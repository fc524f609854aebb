-- Every issue's lifetime events in fct_issue_stats equal its distinct events in staging
-- (a reprocessed event, stored twice until merged, counts once). Rows returned = failures.
select s.issue_id, s.events, e.events as expected
from {{ ref('fct_issue_stats') }} as s
full outer join (
    select issue_id, uniqExact(event_id) as events
    from {{ ref('stg_pulsetrace__events') }}
    where issue_id != 0
    group by issue_id
) as e on e.issue_id = s.issue_id
where s.events != e.events
