-- The rating split covers every sample and the percentiles are ordered.
select *
from {{ ref('fct_web_vitals_daily') }}
where good + needs_improvement + poor != samples
   or not (p50 <= p75 and p75 <= p95)
   or abs(good_share + needs_improvement_share + poor_share - 1) > 1e-9
