{{ config(materialized='incremental', engine='MergeTree()', order_by='id', unique_key='id') }}

select id, project_id, level, created_at
from {{ ref('stg_events') }}
{% if is_incremental() %}
where id > (select max(id) from {{ this }})
{% endif %}
