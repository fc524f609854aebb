{{ config(materialized='view') }}

select id, project_id, level, message, created_at
from {{ source('raw', 'smoke_raw_events') }}
