{{ config(materialized='table', engine='MergeTree()', order_by='level') }}

select e.level as level, any(l.severity) as severity, count() as events
from {{ ref('stg_events') }} as e
left join {{ ref('smoke_levels') }} as l on l.level = e.level
group by e.level
