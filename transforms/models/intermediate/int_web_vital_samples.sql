-- One row per Web Vital measurement of a transaction, rated at Google's thresholds
-- (seeds/web_vital_thresholds.csv): good up to good_max, poor above poor_above.
select
    t.organization_id as organization_id,
    t.project_id as project_id,
    t.event_id as event_id,
    t.timestamp as timestamp,
    t.processed_at as processed_at,
    t.transaction_name as page,
    t.release as release,
    m.1 as vital,
    m.2 as value,
    multiIf(m.2 <= th.good_max, 'good', m.2 <= th.poor_above, 'needs_improvement', 'poor')
        as rating
from {{ ref('stg_pulsetrace__transactions') }} as t
array join arrayZip(t.measurement_names, t.measurement_values) as m
inner join {{ ref('web_vital_thresholds') }} as th on th.vital = m.1
