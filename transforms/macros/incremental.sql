{#
  How the incremental models find their work. Every incremental model keeps, per row, the
  newest `processed_at` of the source rows it was built from (`processed_upto`). A build looks
  only at source rows processed after the model's newest `processed_upto` (less a margin, see
  `reprocess_margin_seconds` in dbt_project.yml) and rebuilds the days those rows belong to.
  Recomputing whole days keeps every number exact even when the pipeline reprocesses an event
  (the source tables are ReplacingMergeTree, so the staging views read them deduplicated).
#}

{% macro watermark(relation=this) -%}
    (select max(processed_upto) - toIntervalSecond({{ var('reprocess_margin_seconds') }})
     from {{ relation }})
{%- endmacro %}

{# The days (of `day_expression` over `source_relation`) with rows processed since the last
   build. Reads only the processed_at column and the day column: no FINAL, no payloads. #}
{% macro changed_days(source_relation, day_expression) -%}
    select distinct {{ day_expression }}
    from {{ source_relation }}
    where processed_at > {{ watermark() }}
{%- endmacro %}

{# A filter on a staging model: only the changed days, as a time range the source table's
   sort key can use and the exact set of days. #}
{% macro in_changed_days(time_column, source_relation, source_time_column) -%}
    toDate({{ time_column }}) in ({{ changed_days(source_relation, 'toDate(' ~ source_time_column ~ ')') }})
    and {{ time_column }} >= (
        select toDateTime(min(day))
        from ({{ changed_days(source_relation, 'toDate(' ~ source_time_column ~ ') as day') }})
    )
{%- endmacro %}

{# Keys (e.g. issue ids) whose day-level rows in `relation` were rebuilt since this model's
   last build: the mart rows that must be recomputed. #}
{% macro changed_keys(relation, key) -%}
    select distinct {{ key }} from {{ relation }} where processed_upto > {{ watermark() }}
{%- endmacro %}
