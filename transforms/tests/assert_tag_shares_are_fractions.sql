-- Each value's share is in (0, 1], and the top values of a key never add up to more than 1.
select issue_id, tag_key, sum(share) as total
from {{ ref('fct_issue_tags') }}
group by issue_id, tag_key
having total > 1 + 1e-9 or min(share) <= 0 or max(share) > 1
