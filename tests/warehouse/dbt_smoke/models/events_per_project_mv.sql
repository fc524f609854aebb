{{ config(materialized='materialized_view', engine='SummingMergeTree()', order_by='project_id') }}

select project_id, count() as events
from {{ source('raw', 'smoke_raw_events') }}
group by project_id
